"""The data steward's quality dashboard: served read-only from a lake, or exported as a
static site. `queries` reads the lake, `charts` draws, `site` renders pages, `app` serves."""
