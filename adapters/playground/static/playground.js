// salesbot playground: renders the neutral replies the hub pushes, and posts what the user
// types or clicks. It decides nothing. Every piece of text is set with textContent or
// createTextNode, never parsed as markup: messages carry user and lead text.
"use strict";

(() => {
  const HANDOFF_AUDIENCES = new Set(["handoff", "approvers", "escalation"]);
  const AUDIENCE_NOTES = {
    team: "Only you and the team see this",
    requester: "Only you see this",
    approvers: "Approvers",
    escalation: "Escalation",
  };
  const AUTHORS = { bot: "salesbot", prospect: "Prospect (you)", rep: "You (rep)", manager: "You (manager)" };
  const TITLE_CHARS = 60;
  const BACKOFF_START_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  // Read marks: per conversation, the time (server ms) of the newest message it held when
  // you last had it open in this browser. Kept in localStorage, the newest READ_MARKS_MAX.
  const READ_KEY = "salesbot.playground.read.v1";
  const READ_MARKS_MAX = 1000;
  const AGE_REFRESH_MS = 30000;

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
    tickets: $("open-tickets-list"),
    ticketCount: $("open-tickets-count"),
    ticketsEmpty: $("open-tickets-empty"),
    composer: $("composer"),
    input: $("composer-input"),
    error: $("composer-error"),
  };

  // The model: what has been seen, each conversation's messages in order (a card update
  // takes the place of the card it replaces), the handoff channel's messages, the open
  // tickets as the server last listed them, and your read marks.
  const model = {
    seen: new Set(),
    threads: new Map(), // conversation id -> {id, title, messages: []}
    handoff: [],
    selected: null,
    tickets: [],
    ticketsAt: 0, // performance.now() when the tickets were listed
    readMarks: loadReadMarks(),
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

  // ---- read marks (localStorage; a page without storage simply forgets them) ----
  function loadReadMarks() {
    try {
      const data = JSON.parse(window.localStorage.getItem(READ_KEY) || "{}");
      if (!data || typeof data !== "object" || Array.isArray(data)) return new Map();
      return new Map(Object.entries(data).filter(([, at]) => typeof at === "number"));
    } catch (_) {
      return new Map();
    }
  }

  function saveReadMarks() {
    const newest = [...model.readMarks].sort((a, b) => b[1] - a[1]).slice(0, READ_MARKS_MAX);
    try {
      window.localStorage.setItem(READ_KEY, JSON.stringify(Object.fromEntries(newest)));
    } catch (_) {
      // storage full or refused: the marks last as long as the page
    }
  }

  function lastAtOf(entry) {
    let last = 0;
    for (const message of entry.messages) {
      if (typeof message.at === "number" && message.at > last) last = message.at;
    }
    return last;
  }

  // Unread: the bot's messages (replies, cards, card updates, notices) newer than your mark.
  // What you typed yourself, as any of the three people, is never unread.
  function unreadCount(entry) {
    const mark = model.readMarks.get(entry.id) || 0;
    return entry.messages.filter((m) => m.author === "bot" && typeof m.at === "number" && m.at > mark).length;
  }

  function markRead(entry) {
    const last = lastAtOf(entry);
    if (last > (model.readMarks.get(entry.id) || 0)) {
      model.readMarks.set(entry.id, last);
      saveReadMarks();
    }
  }

  // ---- ages ----
  function formatAge(ms) {
    const minutes = Math.floor(Math.max(0, ms) / 60000);
    if (minutes < 1) return "just now";
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} h ${minutes % 60} min ago`;
    return `${Math.floor(hours / 24)} d ${hours % 24} h ago`;
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
    // Beside a card its text is the notification's (as on Slack and Teams): the card shows it.
    if (reply.card) node.append(renderCard(reply.card, message));
    else if (reply.text) node.append(el("p", { className: "text", "data-testid": "message-text", text: reply.text }));
    if (reply.image) node.append(renderImage(reply.image));
    return node;
  }

  // A reply's picture (the /metrics chart), inline from its base64 PNG: a data: URI, which
  // the page's CSP allows for images only. Only PNG is drawn; the alt text says what it shows.
  function renderImage(image) {
    if (image.media_type !== "image/png" || !/^[A-Za-z0-9+/=]+$/.test(image.data || "")) {
      return el("p", { className: "text", text: image.alt || "" });
    }
    return el("img", {
      className: "chart",
      "data-testid": "message-image",
      src: `data:image/png;base64,${image.data}`,
      alt: image.alt || "",
      width: image.width,
      height: image.height,
    });
  }

  // ---- the leads channel ----
  function thread(conversation) {
    let entry = model.threads.get(conversation);
    if (!entry) {
      entry = { id: conversation, title: "", messages: [] };
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

  // Newest activity first: the thread whose latest message is newest is on top.
  function renderThreadList() {
    const items = [];
    const entries = [...model.threads.values()].map((entry, index) => ({ entry, index, last: lastAtOf(entry) }));
    entries.sort((a, b) => b.last - a.last || b.index - a.index);
    for (const { entry } of entries) {
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
      const unread = current ? 0 : unreadCount(entry);
      if (unread) {
        button.append(el("span", { className: "unread", "data-testid": "unread-badge", text: `${unread} unread` }));
      }
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
    if (conversation) markRead(thread(conversation));
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

  // `newestFirst`: the container shows the newest message on top (the handoff channel).
  function place(list, container, message, newestFirst) {
    const index = replaceIn(list, message);
    if (index >= 0) {
      const old = list[index];
      list[index] = message;
      if (container) {
        const node = container.querySelector(`[data-id="${CSS.escape(old.id)}"]`);
        if (node) node.replaceWith(renderMessage(message));
        else if (newestFirst) container.prepend(renderMessage(message));
        else container.append(renderMessage(message));
      }
      return;
    }
    list.push(message);
    if (container && newestFirst) {
      container.prepend(renderMessage(message));
    } else if (container) {
      const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
      container.append(renderMessage(message));
      if (nearBottom) container.scrollTop = container.scrollHeight;
    }
  }

  // `live`: pushed now (not loaded with the history): the lists are redrawn at once, and a
  // change in the handoff channel has the open tickets listed again.
  function apply(message, live) {
    if (!message || !message.id || model.seen.has(message.id)) return;
    model.seen.add(message.id);
    const audience = message.audience || (message.reply && message.reply.audience);
    if (HANDOFF_AUDIENCES.has(audience)) {
      place(model.handoff, ui.handoff, message, true);
      ui.handoffEmpty.hidden = true;
      if (live) refreshTickets();
      return;
    }
    const entry = thread(message.conversation);
    const visible = model.selected === message.conversation;
    place(entry.messages, visible ? ui.thread : null, message, false);
    if (visible) {
      markRead(entry);
      ui.threadTitle.textContent = titleFor(entry);
    }
    if (live) renderThreadList();
  }

  // ---- the open tickets (handoff pane): listed by the server, aged here ----
  let ticketsLoading = false;
  let ticketsAgain = false;

  async function refreshTickets() {
    if (ticketsLoading) {
      ticketsAgain = true; // one more listing after the one under way
      return;
    }
    ticketsLoading = true;
    try {
      do {
        ticketsAgain = false;
        try {
          const response = await fetch("/playground/tickets", { cache: "no-store" });
          if (!response.ok) continue;
          const data = await response.json();
          model.tickets = Array.isArray(data.tickets) ? data.tickets : [];
          model.ticketsAt = window.performance.now();
          renderTickets();
        } catch (_) {
          // listed again at the next change or reconnect
        }
      } while (ticketsAgain);
    } finally {
      ticketsLoading = false;
    }
  }

  function holderText(ticket) {
    if (ticket.status === "claimed") return `Claimed by ${ticket.holder_name || ticket.holder || "someone"}`;
    return ticket.kind === "approval" ? "Waiting for an approver" : "Unclaimed";
  }

  function ageText(ticket) {
    const age = (Number(ticket.age_ms) || 0) + (window.performance.now() - model.ticketsAt);
    return `opened ${formatAge(age)}`;
  }

  function renderTickets() {
    const items = model.tickets.map((ticket) => {
      const opened = typeof ticket.opened_at === "number" ? new Date(ticket.opened_at) : null;
      const open = el("button", {
        type: "button",
        className: "link ticket-title",
        "data-testid": "open-ticket-thread",
        text: ticket.title || ticket.reason || ticket.key,
      });
      open.addEventListener("click", () => select(ticket.conversation, true));
      return el(
        "li",
        {
          className: `ticket ticket-${ticket.status === "claimed" ? "claimed" : "open"}`,
          "data-testid": "open-ticket",
          "data-key": ticket.key,
          "data-status": ticket.status,
        },
        open,
        el(
          "span",
          { className: "ticket-meta" },
          el("time", {
            className: "ticket-age",
            "data-testid": "ticket-age",
            datetime: opened ? opened.toISOString() : null,
            title: opened ? opened.toLocaleString() : null,
            text: ageText(ticket),
          }),
          el("span", { className: "ticket-holder", "data-testid": "ticket-holder", text: holderText(ticket) }),
        ),
      );
    });
    ui.tickets.replaceChildren(...items);
    ui.ticketCount.textContent = String(items.length);
    ui.ticketsEmpty.hidden = items.length > 0;
  }

  function renderTicketAges() {
    for (const node of ui.tickets.querySelectorAll("[data-testid=open-ticket]")) {
      const ticket = model.tickets.find((t) => t.key === node.dataset.key);
      const age = node.querySelector("[data-testid=ticket-age]");
      if (ticket && age) age.textContent = ageText(ticket);
    }
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

  // Lines typed while an earlier one is still being sent wait here, in order, and go
  // out one after another: the composer empties at once, so nothing typed meanwhile is
  // lost, and each line goes to the conversation the one before it started.
  const outgoing = [];
  let sending = false;

  async function submit(event) {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) {
      showError("Type a message or a command first.");
      return;
    }
    ui.input.value = "";
    showError("");
    outgoing.push({ role: role(), text });
    if (sending) return;
    sending = true;
    try {
      while (outgoing.length) {
        const line = outgoing.shift();
        try {
          const answer = await postJson("/playground/send", {
            role: line.role,
            conversation: model.selected,
            text: line.text,
          });
          if (answer.conversation && answer.conversation !== model.selected) {
            thread(answer.conversation);
            select(answer.conversation, false);
          }
        } catch (error) {
          showError(error.message); // an unknown command's message lists the commands
          // The line comes back to be corrected, unless something new is being typed.
          if (!ui.input.value) ui.input.value = line.text;
        }
      }
    } finally {
      sending = false;
      ui.input.focus();
    }
  }

  function newConversation() {
    model.selected = null;
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
        for (const message of data.messages || []) apply(message, false);
      } catch (_) {
        setConnection("Live (history unavailable)", "live");
      }
      loaded = true;
      for (const message of buffered) apply(message, false);
      buffered = [];
      renderThreadList();
      renderThread();
      refreshTickets();
    });

    socket.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (loaded) apply(message, true);
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
  // Another tab of this page read a thread: its marks count here too.
  window.addEventListener("storage", (event) => {
    if (event.key !== READ_KEY) return;
    model.readMarks = loadReadMarks();
    renderThreadList();
  });
  window.setInterval(renderTicketAges, AGE_REFRESH_MS);
  renderThreadList();
  renderThread();
  renderTickets();
  connect();
})();
