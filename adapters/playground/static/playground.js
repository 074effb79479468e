// salesbot playground: renders the neutral replies the hub pushes, and posts what the user
// types or clicks. It decides nothing. Every piece of text is set with textContent or
// createTextNode, never parsed as markup: messages carry user and lead text.
"use strict";

(() => {
  const HANDOFF_AUDIENCES = new Set(["handoff", "approvers"]);
  const AUDIENCE_NOTES = {
    team: "Only you and the team see this",
    requester: "Only you see this",
    approvers: "Approvers",
  };
  const AUTHORS = { bot: "salesbot", prospect: "Prospect (you)", rep: "You (rep)", manager: "You (manager)" };
  const TITLE_CHARS = 60;
  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    connection: $("connection"),
    threadList: $("thread-list"),
    leadsEmpty: $("leads-empty"),
    newConversation: $("new-conversation"),
    threadTitle: $("thread-title"),
    threadId: $("thread-id"),
    thread: $("thread-messages"),
    handoff: $("handoff-messages"),
    handoffEmpty: $("handoff-empty"),
    composer: $("composer"),
    input: $("composer-input"),
    send: $("composer-send"),
    error: $("composer-error"),
  };

  // The model: what has been seen, each conversation's messages in order (a card update
  // takes the place of the card it replaces), and the handoff channel's messages.
  const model = {
    seen: new Set(),
    threads: new Map(), // conversation id -> {id, title, messages: [], unread: bool}
    handoff: [],
    selected: null,
    composingNew: false, // "New conversation" was pressed: do not jump to other threads
  };

  // ---- small DOM helpers (text only) ----
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function role() {
    const checked = ui.composer.querySelector('input[name="role"]:checked');
    return checked ? checked.value : "prospect";
  }

  function setRole(value) {
    const radio = $(`role-${value}`);
    if (radio) radio.checked = true;
  }

  function showError(text) {
    ui.error.textContent = text || "";
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (_) {
      data = {};
    }
    if (!response.ok) {
      throw new Error(data.error || `The server answered ${response.status}.`);
    }
    return data;
  }

  // ---- rendering ----
  function refOf(message) {
    const card = message.reply && message.reply.card;
    return (card && card.ref) || message.replaces || "";
  }

  function renderCard(card, message) {
    const node = el("article", {
      className: `card card-${card.kind}`,
      "data-testid": "card",
      "data-ref": card.ref || "",
      "data-kind": card.kind,
      "aria-label": card.title,
    });
    const head = el("header", { className: "card-head" }, el("h3", { text: card.title }));
    if (card.status) {
      head.append(el("span", { className: "status", "data-testid": "card-status", text: card.status }));
    }
    node.append(head);
    if (card.text) node.append(el("p", { className: "card-text", text: card.text }));
    if (card.fields && card.fields.length) {
      const list = el("dl", { className: "fields" });
      for (const field of card.fields) {
        list.append(el("div", {}, el("dt", { text: field.label }), el("dd", { text: field.value })));
      }
      node.append(list);
    }
    if (card.lines && card.lines.length) {
      node.append(el("pre", { className: "lines", "data-testid": "card-lines", text: card.lines.join("\n") }));
    }
    let box = null;
    if (card.input) {
      // A text box whose content the card's buttons send along (a lost deal's note).
      const id = `note-${card.ref || "card"}-${message.id || ""}`;
      box = el("input", {
        type: "text",
        id,
        className: "card-input",
        "data-testid": "card-input",
        maxlength: card.input.max_chars,
        placeholder: card.input.placeholder || "",
      });
      node.append(el("label", { className: "card-input-label", for: id, text: card.input.label }), box);
    }
    if (card.buttons && card.buttons.length) {
      const row = el("div", { className: "buttons", role: "group", "aria-label": `Actions for ${card.title}` });
      for (const button of card.buttons) {
        const node = el("button", {
          type: "button",
          className: `btn btn-${button.style || "default"}`,
          "data-testid": "card-button",
          "data-action": button.action,
          "data-target": button.target || "",
          text: button.label,
        });
        node.addEventListener("click", () => press(button, message, node, box ? box.value : ""));
        row.append(node);
      }
      node.append(row);
    }
    return node;
  }

  function renderMessage(message) {
    const reply = message.reply || {};
    const audience = message.audience || reply.audience || "conversation";
    const node = el("div", {
      className: `message from-${message.author || "bot"} audience-${audience}`,
      "data-testid": HANDOFF_AUDIENCES.has(audience) ? "handoff-message" : "thread-message",
      "data-id": message.id,
      "data-audience": audience,
      "data-author": message.author || "bot",
    });
    const meta = el("div", { className: "meta" }, el("span", { className: "author", text: AUTHORS[message.author] || "salesbot" }));
    const note = AUDIENCE_NOTES[audience];
    if (note) meta.append(el("span", { className: "note", "data-testid": "audience-note", text: note }));
    if (message.replaces) meta.append(el("span", { className: "note updated", text: "updated" }));
    if (typeof message.at === "number") {
      const when = new Date(message.at);
      meta.append(el("time", { datetime: when.toISOString(), text: when.toLocaleTimeString() }));
    }
    if (HANDOFF_AUDIENCES.has(audience)) {
      meta.append(el("button", { type: "button", className: "link", "data-testid": "open-thread", text: "Open thread" }));
      meta.lastChild.addEventListener("click", () => select(message.conversation, true));
    }
    node.append(meta);
    const text = reply.text || "";
    const cardTitle = reply.card ? reply.card.title : "";
    if (text && text !== cardTitle) node.append(el("p", { className: "text", "data-testid": "message-text", text }));
    if (reply.card) node.append(renderCard(reply.card, message));
    return node;
  }

  // ---- the leads channel ----
  function thread(conversation) {
    let entry = model.threads.get(conversation);
    if (!entry) {
      entry = { id: conversation, title: "", messages: [], unread: false };
      model.threads.set(conversation, entry);
    }
    return entry;
  }

  function titleFor(entry) {
    if (entry.title) return entry.title;
    for (const message of entry.messages) {
      const reply = message.reply || {};
      if (reply.card && reply.card.kind === "lead") return reply.card.title;
    }
    const first = entry.messages.find((message) => message.author !== "bot") || entry.messages[0];
    const text = first && first.reply ? first.reply.text || "" : "";
    const line = text.split("\n")[0];
    return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1)}…` : line || entry.id;
  }

  function renderThreadList() {
    const items = [];
    for (const entry of model.threads.values()) {
      const current = entry.id === model.selected;
      const button = el(
        "button",
        {
          type: "button",
          className: "thread-link",
          "data-testid": "thread-link",
          "data-conversation": entry.id,
          "aria-current": current ? "true" : null,
        },
        el("span", { className: "thread-name", text: titleFor(entry) }),
        el("span", { className: "thread-meta", text: `${entry.messages.length} message${entry.messages.length === 1 ? "" : "s"}` }),
      );
      if (entry.unread && !current) button.append(el("span", { className: "unread", text: "new" }));
      button.addEventListener("click", () => select(entry.id, true));
      items.push(el("li", {}, button));
    }
    ui.threadList.replaceChildren(...items);
    ui.leadsEmpty.hidden = items.length > 0;
  }

  function renderThread() {
    const entry = model.selected ? model.threads.get(model.selected) : null;
    ui.threadTitle.textContent = entry ? titleFor(entry) : "New conversation";
    ui.threadId.textContent = model.selected ? model.selected : "Your first message starts a new conversation.";
    ui.thread.replaceChildren(...(entry ? entry.messages.map(renderMessage) : []));
    ui.thread.scrollTop = ui.thread.scrollHeight;
  }

  function select(conversation, focusThread) {
    model.selected = conversation;
    model.composingNew = false;
    if (conversation) thread(conversation).unread = false;
    renderThreadList();
    renderThread();
    if (focusThread) ui.thread.focus();
  }

  // ---- applying a message (history or live), at most once ----
  function replaceIn(list, message) {
    if (!message.replaces) return -1;
    for (let index = list.length - 1; index >= 0; index -= 1) {
      if (refOf(list[index]) === message.replaces) return index;
    }
    return -1;
  }

  function place(list, container, message) {
    const index = replaceIn(list, message);
    if (index >= 0) {
      const old = list[index];
      list[index] = message;
      if (container) {
        const node = container.querySelector(`[data-id="${CSS.escape(old.id)}"]`);
        if (node) node.replaceWith(renderMessage(message));
        else container.append(renderMessage(message));
      }
      return;
    }
    list.push(message);
    if (container) {
      const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
      container.append(renderMessage(message));
      if (nearBottom) container.scrollTop = container.scrollHeight;
    }
  }

  function apply(message) {
    if (!message || !message.id || model.seen.has(message.id)) return;
    model.seen.add(message.id);
    const audience = message.audience || (message.reply && message.reply.audience);
    if (HANDOFF_AUDIENCES.has(audience)) {
      place(model.handoff, ui.handoff, message);
      ui.handoffEmpty.hidden = true;
      return;
    }
    const entry = thread(message.conversation);
    const visible = model.selected === message.conversation;
    place(entry.messages, visible ? ui.thread : null, message);
    if (!visible) entry.unread = true;
    if (!model.selected && !model.composingNew) {
      select(message.conversation, false);
      return;
    }
    if (visible) ui.threadTitle.textContent = titleFor(entry);
    renderThreadList();
  }

  // ---- actions ----
  async function press(button, message, node, note) {
    if (button.action === "open_quote_form") {
      // The playground's quote form is the composer, prefilled, speaking as a rep.
      select(message.conversation, false);
      if (role() === "prospect") setRole("rep");
      ui.input.value = "/quote ";
      ui.input.focus();
      return;
    }
    const inHandoff = HANDOFF_AUDIENCES.has(message.audience);
    const card = (message.reply && message.reply.card) || {};
    // The handoff channel is the team's: its buttons are pressed by the person chosen, or
    // by the rep while the prospect is chosen (a prospect never sees that channel).
    const who = role();
    node.disabled = true;
    showError("");
    try {
      // The button's nonce and signature come back as delivered: the server checks them.
      await postJson("/playground/click", {
        conversation: message.conversation,
        action: button.action,
        target: button.target || "",
        ref: card.ref || "",
        nonce: button.nonce,
        signature: button.signature,
        role: inHandoff && who === "prospect" ? "rep" : who,
        note: note || "",
      });
    } catch (error) {
      showError(error.message);
    } finally {
      node.disabled = false;
    }
  }

  async function submit(event) {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) {
      showError("Type a message or a command first.");
      return;
    }
    ui.send.disabled = true;
    showError("");
    try {
      const answer = await postJson("/playground/send", {
        role: role(),
        conversation: model.selected,
        text,
      });
      ui.input.value = "";
      if (answer.conversation && answer.conversation !== model.selected) {
        thread(answer.conversation);
        select(answer.conversation, false);
      }
    } catch (error) {
      showError(error.message); // an unknown command's message lists the commands
    } finally {
      ui.send.disabled = false;
      ui.input.focus();
    }
  }

  function newConversation() {
    model.selected = null;
    model.composingNew = true;
    renderThreadList();
    renderThread();
    showError("");
    ui.input.focus();
  }

  // ---- the live feed: WebSocket with backoff; history reloaded on every (re)connect ----
  let backoff = BACKOFF_START_MS;

  function setConnection(text, state) {
    ui.connection.textContent = text;
    ui.connection.dataset.state = state;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/playground/ws`);
    let buffered = [];
    let loaded = false;

    socket.addEventListener("open", async () => {
      backoff = BACKOFF_START_MS;
      setConnection("Live", "live");
      try {
        const response = await fetch("/playground/history", { cache: "no-store" });
        const data = await response.json();
        for (const message of data.messages || []) apply(message);
      } catch (_) {
        setConnection("Live (history unavailable)", "live");
      }
      loaded = true;
      for (const message of buffered) apply(message);
      buffered = [];
    });

    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (loaded) apply(message);
      else buffered.push(message);
    });

    socket.addEventListener("close", () => {
      const wait = Math.min(backoff, BACKOFF_MAX_MS);
      const jittered = wait / 2 + Math.random() * (wait / 2);
      setConnection(`Disconnected — reconnecting in ${Math.ceil(jittered / 1000)} s`, "down");
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      window.setTimeout(connect, jittered);
    });
  }

  ui.composer.addEventListener("submit", submit);
  ui.newConversation.addEventListener("click", newConversation);
  renderThreadList();
  renderThread();
  connect();
})();
