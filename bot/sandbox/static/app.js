// The sandbox's web chat: talk to the real bot as one of the demo staff.
// Texts come from the server (/api/config, bot/texts/*/sandbox.toml); messages by long polling.
"use strict";

(() => {
  const state = {
    lang: localStorage.getItem("sandbox.lang") || "vi",
    config: null,
    user: null,
    version: -1,
    abort: null,
    seenNotices: {},
    lastId: 0,
    toastTimer: null,
  };
  const $ = (id) => document.getElementById(id);

  function text(key, values) {
    let template = (state.config && state.config.texts[key]) || key;
    for (const [name, value] of Object.entries(values || {})) {
      template = template.split("{" + name + "}").join(String(value));
    }
    return template;
  }

  function el(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined && content !== null) node.textContent = content;
    return node;
  }

  // --- configuration, texts, people ---------------------------------------------------------------

  async function loadConfig() {
    const response = await fetch(`/api/config?lang=${encodeURIComponent(state.lang)}`);
    if (!response.ok) throw new Error(String(response.status));
    state.config = await response.json();
    state.lang = state.config.language;
    applyTexts();
    if (state.user === null || !persona(state.user)) state.user = initialPersona();
    renderPersonas();
  }

  function applyTexts() {
    document.documentElement.lang = state.lang;
    document.title = text("title");
    $("banner-title").textContent = text("banner");
    $("banner-detail").textContent = text("banner_detail");
    $("people-title").textContent = text("personas");
    $("people-hint").textContent = text("personas_hint");
    $("language").textContent = text("switch_language");
    $("bot-name").textContent = state.config.bot.name;
    $("bot-sub").textContent = text("bot_subtitle", { username: state.config.bot.username });
    $("text").placeholder = text("input_placeholder");
    $("send").textContent = text("send");
    $("attach").title = text("attach");
    $("attach").setAttribute("aria-label", text("attach"));
  }

  function persona(id) {
    return (state.config.personas || []).find((p) => p.id === id) || null;
  }

  function initialPersona() {
    const fromUrl = Number(new URLSearchParams(location.search).get("as"));
    const remembered = Number(localStorage.getItem("sandbox.user"));
    for (const id of [fromUrl, remembered]) {
      if (id && persona(id)) return id;
    }
    return state.config.personas.length ? state.config.personas[0].id : null;
  }

  function renderPersonas() {
    const list = $("personas");
    list.replaceChildren();
    for (const p of state.config.personas) {
      const item = el("li");
      const button = el("button", "persona");
      button.type = "button";
      button.dataset.userId = String(p.id);
      button.dataset.role = p.role;
      button.setAttribute("aria-pressed", String(p.id === state.user));
      button.append(el("span", "persona-role", p.role_label));
      button.append(el("span", "persona-name", p.name));
      button.append(el("span", "persona-school", p.school || text("no_school")));
      button.addEventListener("click", () => selectPersona(p.id));
      item.append(button);
      list.append(item);
    }
    const current = state.user !== null ? persona(state.user) : null;
    $("who").textContent = current ? `${current.name} · ${current.role_label}` : "";
  }

  function selectPersona(id) {
    if (id === state.user) return;
    state.user = id;
    state.version = -1;
    delete document.body.dataset.version;
    localStorage.setItem("sandbox.user", String(id));
    const url = new URL(location.href);
    url.searchParams.set("as", String(id));
    history.replaceState(null, "", url);
    renderPersonas();
    $("messages").replaceChildren();
    $("menu").replaceChildren();
    $("menu").hidden = true;
    if (state.abort) state.abort.abort();
    $("text").focus();
  }

  // --- the chat -------------------------------------------------------------------------------------

  async function pollLoop() {
    for (;;) {
      const user = state.user;
      if (user === null) {
        await sleep(1000);
        continue;
      }
      const controller = new AbortController();
      state.abort = controller;
      try {
        const url = `/api/chats/${user}?after=${state.version}&wait=25&lang=${state.lang}`;
        const response = await fetch(url, { signal: controller.signal });
        if (!response.ok) throw new Error(String(response.status));
        const chat = await response.json();
        hideStatus();
        if (user !== state.user) continue;
        if (chat.version !== state.version) {
          const first = state.version === -1;
          state.version = chat.version;
          renderChat(chat, first);
          document.body.dataset.version = String(chat.version); // what is shown (tests wait on it)
        }
      } catch (error) {
        if (error.name === "AbortError") continue;
        showStatus(text("connection_lost"));
        await sleep(1500);
      }
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function renderChat(chat, first) {
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    box.replaceChildren();
    if (!chat.messages.length) {
      box.append(el("p", "empty", text("empty_chat")));
    }
    for (const message of chat.messages) box.append(renderMessage(message));
    const last = chat.messages.length ? chat.messages[chat.messages.length - 1].id : 0;
    if (first || last !== state.lastId) {
      showLatest(); // a new message: bring it into view
    } else if (nearBottom) {
      box.scrollTop = box.scrollHeight; // an edit, while reading the end: stay at the end
    }
    state.lastId = last;
    renderMenu(chat.keyboard);
    renderNotices(chat.notices, first);
  }

  // The latest message in view, instantly (a smooth scroll would still be moving when the next message
  // comes): a message that fits the pane is shown whole, at the bottom, like Telegram; one taller than
  // the pane (a long /help) from its first line, so it is read from the start.
  function showLatest() {
    const box = $("messages");
    const latest = box.lastElementChild;
    if (!latest) return;
    const gap = 8;
    if (latest.offsetHeight + 2 * gap > box.clientHeight) {
      box.scrollTop = latest.offsetTop - gap;
    } else {
      box.scrollTop = box.scrollHeight;
    }
  }

  function renderMessage(message) {
    const bubble = el("div", "msg " + (message.from_bot ? "bot" : "me"));
    bubble.dataset.messageId = String(message.id);
    if (message.photo) {
      const link = el("a", "photo");
      link.href = message.photo.download_url;
      const image = el("img");
      image.src = message.photo.url;
      image.alt = text("photo");
      // A picture gets its height when it has loaded: bring the latest message back into view if this
      // is it (nobody has scrolled away in between, as far as we can tell: the pane was at its end).
      image.addEventListener("load", () => {
        const box = $("messages");
        if (box.lastElementChild === bubble) showLatest();
      });
      link.append(image);
      bubble.append(link);
    }
    if (message.document) {
      const link = el("a", "document");
      link.href = message.document.url;
      link.setAttribute("download", message.document.name);
      link.append(el("span", "doc-icon", "📄"));
      const info = el("span", "doc-info");
      info.append(el("span", "doc-name", message.document.name));
      info.append(el("span", "doc-size", `${formatSize(message.document.size)} · ${text("download")}`));
      link.append(info);
      bubble.append(link);
    }
    const html = message.html || message.caption_html;
    if (html) {
      const body = el("div", "body");
      body.innerHTML = html; // sanitised by the server: only b, i, u, s, code, pre, a
      bubble.append(body);
    }
    const meta = el("div", "meta");
    if (message.edited) meta.append(el("span", "edited", text("edited")));
    meta.append(el("time", "", formatTime(message.date)));
    bubble.append(meta);
    if (message.buttons.length) bubble.append(renderButtons(message));
    return bubble;
  }

  function renderButtons(message) {
    const keyboard = el("div", "inline-keyboard");
    for (const row of message.buttons) {
      const line = el("div", "inline-row");
      for (const button of row) {
        if (button.url) {
          const link = el("a", "inline-button", button.text);
          link.href = button.url;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          line.append(link);
        } else {
          const node = el("button", "inline-button", button.text);
          node.type = "button";
          node.disabled = button.data === undefined;
          node.addEventListener("click", () => press(message.id, button.data, keyboard));
          line.append(node);
        }
      }
      keyboard.append(line);
    }
    return keyboard;
  }

  function renderMenu(rows) {
    const menu = $("menu");
    menu.replaceChildren();
    menu.hidden = !rows.length;
    for (const row of rows) {
      const line = el("div", "menu-row");
      for (const label of row) {
        const button = el("button", "menu-button", label);
        button.type = "button";
        button.addEventListener("click", () => sendText(label));
        line.append(button);
      }
      menu.append(line);
    }
  }

  function renderNotices(notices, first) {
    const seen = state.seenNotices[state.user] || 0;
    const fresh = notices.filter((n) => n.id > seen);
    if (notices.length) state.seenNotices[state.user] = notices[notices.length - 1].id;
    if (!first && fresh.length) {
      const last = fresh[fresh.length - 1];
      showToast(last.text, last.alert);
    }
  }

  function formatTime(seconds) {
    if (!seconds) return "";
    const locale = state.lang === "vi" ? "vi-VN" : "en-GB";
    return new Date(seconds * 1000).toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  }

  function formatSize(bytes) {
    if (bytes === null || bytes === undefined) return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  // --- what the visitor does ------------------------------------------------------------------------

  async function post(path, init) {
    const response = await fetch(`/api/chats/${state.user}/${path}?lang=${state.lang}`, {
      method: "POST",
      ...init,
    });
    if (!response.ok) {
      let reason = String(response.status);
      try {
        reason = (await response.json()).error || reason;
      } catch (_) {
        // not JSON: keep the status
      }
      throw new Error(reason);
    }
    return response.json();
  }

  function postJson(path, data) {
    return post(path, { headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  }

  async function sendText(value) {
    if (!value.trim() || state.user === null) return;
    try {
      await postJson("messages", { text: value });
    } catch (error) {
      showToast(text("send_failed", { reason: error.message }), false);
    }
  }

  async function press(messageId, data, keyboard) {
    for (const button of keyboard.querySelectorAll("button")) button.disabled = true;
    try {
      await postJson("callbacks", { message_id: messageId, data });
    } catch (error) {
      for (const button of keyboard.querySelectorAll("button")) button.disabled = false;
      showToast(text("send_failed", { reason: error.message }), false);
    }
  }

  async function sendFile(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("caption", $("text").value);
    try {
      await post("documents", { body: form });
      $("text").value = "";
    } catch (error) {
      showToast(text("send_failed", { reason: error.message }), false);
    }
  }

  function showToast(message, alert) {
    const toast = $("toast");
    toast.textContent = message;
    toast.classList.toggle("alert", Boolean(alert));
    toast.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => (toast.hidden = true), alert ? 8000 : 3000);
  }

  function showStatus(message) {
    $("status").textContent = message;
    $("status").hidden = false;
  }

  function hideStatus() {
    $("status").hidden = true;
  }

  function wire() {
    $("composer").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = $("text");
      const value = input.value;
      if (!value.trim()) return;
      input.value = "";
      await sendText(value);
      input.focus();
    });
    $("file").addEventListener("change", async () => {
      const file = $("file").files[0];
      if (file) await sendFile(file);
      $("file").value = "";
    });
    $("toast").addEventListener("click", () => ($("toast").hidden = true));
    $("language").addEventListener("click", async () => {
      const languages = state.config.languages;
      state.lang = languages[(languages.indexOf(state.lang) + 1) % languages.length];
      localStorage.setItem("sandbox.lang", state.lang);
      await loadConfig();
      state.version = -1;
      if (state.abort) state.abort.abort();
    });
  }

  async function start() {
    wire();
    for (;;) {
      try {
        await loadConfig();
        break;
      } catch (_) {
        showStatus(text("connection_lost"));
        await sleep(1500);
      }
    }
    hideStatus();
    pollLoop();
  }

  start();
})();
