"""The policies that ship with salesbot, as package data (`default.toml`, `seed.toml`)."""
