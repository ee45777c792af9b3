// treadle dashboard: live parts and live logs. Progressive enhancement only: every page works
// without this script (reload to see changes). No inline code anywhere (the CSP forbids it).

const state = document.querySelector('.live-state');
const say = (text) => {
  if (state) state.textContent = text;
};

// ---- Live parts: when /events says something happened, fetch this page again and swap the
// elements marked data-part for their new versions (logs keep streaming untouched).
function followEvents() {
  if (!document.body.dataset.live) return;
  let timer;
  let backoff = 1000;
  const refresh = async () => {
    try {
      const res = await fetch(location.href, {
        headers: { accept: 'text/html' },
        credentials: 'same-origin',
      });
      if (!res.ok) return;
      const doc = new DOMParser().parseFromString(await res.text(), 'text/html');
      for (const fresh of doc.querySelectorAll('[data-part]')) {
        const old = document.querySelector(`[data-part="${CSS.escape(fresh.dataset.part)}"]`);
        if (old && old.innerHTML !== fresh.innerHTML) old.replaceWith(document.importNode(fresh, true));
      }
      startLogs();
    } catch {
      // The next event tries again.
    }
  };
  const connect = () => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/events`);
    ws.onopen = () => {
      backoff = 1000;
      say('Live');
    };
    // At most one refresh a second, however busy the stream: never starved by a steady flow.
    ws.onmessage = () => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        void refresh();
      }, 1000);
    };
    ws.onclose = () => {
      say('Reconnecting…');
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 30000);
    };
  };
  connect();
}

// ---- ANSI SGR colours, rendered as spans built with textContent (never as markup).
const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];
const PALETTE = (n) => {
  if (n < 16) return null;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const c = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${c(Math.floor(i / 36))},${c(Math.floor(i / 6) % 6)},${c(i % 6)})`;
};

function applySgr(style, codes) {
  for (let i = 0; i < codes.length; i++) {
    const n = codes[i];
    if (n === 0)
      Object.assign(style, {
        fg: null,
        bg: null,
        rgbFg: null,
        rgbBg: null,
        bold: false,
        dim: false,
        italic: false,
        under: false,
      });
    else if (n === 1) style.bold = true;
    else if (n === 2) style.dim = true;
    else if (n === 3) style.italic = true;
    else if (n === 4) style.under = true;
    else if (n === 22) style.bold = style.dim = false;
    else if (n === 23) style.italic = false;
    else if (n === 24) style.under = false;
    else if (n >= 30 && n <= 37) Object.assign(style, { fg: NAMES[n - 30], rgbFg: null });
    else if (n >= 90 && n <= 97) Object.assign(style, { fg: `bright-${NAMES[n - 90]}`, rgbFg: null });
    else if (n >= 40 && n <= 47) Object.assign(style, { bg: NAMES[n - 40], rgbBg: null });
    else if (n >= 100 && n <= 107) Object.assign(style, { bg: `bright-${NAMES[n - 100]}`, rgbBg: null });
    else if (n === 39) Object.assign(style, { fg: null, rgbFg: null });
    else if (n === 49) Object.assign(style, { bg: null, rgbBg: null });
    else if (n === 38 || n === 48) {
      const fg = n === 38;
      let colour = null;
      if (codes[i + 1] === 5) {
        const k = codes[i + 2] ?? 0;
        colour = k < 16 ? null : PALETTE(k);
        if (k < 16) style[fg ? 'fg' : 'bg'] = k < 8 ? NAMES[k] : `bright-${NAMES[k - 8]}`;
        i += 2;
      } else if (codes[i + 1] === 2) {
        colour = `rgb(${codes[i + 2] ?? 0},${codes[i + 3] ?? 0},${codes[i + 4] ?? 0})`;
        i += 4;
      }
      if (colour) style[fg ? 'rgbFg' : 'rgbBg'] = colour;
    }
  }
}

function renderAnsi(text, style) {
  const out = document.createDocumentFragment();
  const re = new RegExp(`${String.fromCharCode(27)}\\[([0-9;]*)([A-Za-z])`, 'g');
  let last = 0;
  const emit = (s) => {
    if (!s) return;
    const span = document.createElement('span');
    span.textContent = s;
    const cls = [];
    if (style.fg) cls.push(`fg-${style.fg}`);
    if (style.bg) cls.push(`bg-${style.bg}`);
    if (style.bold) cls.push('b');
    if (style.dim) cls.push('dim');
    if (style.italic) cls.push('i');
    if (style.under) cls.push('u');
    if (cls.length) span.className = cls.join(' ');
    if (style.rgbFg) span.style.color = style.rgbFg;
    if (style.rgbBg) span.style.backgroundColor = style.rgbBg;
    out.append(span);
  };
  for (let m = re.exec(text); m; m = re.exec(text)) {
    emit(text.slice(last, m.index));
    if (m[2] === 'm') applySgr(style, m[1] === '' ? [0] : m[1].split(';').map(Number));
    last = re.lastIndex;
  }
  emit(text.slice(last));
  return out;
}

// ---- Live logs: each terminal follows its workflow's /logs from the first line; a finished
// workflow's log arrives whole and the socket closes.
function startLogs() {
  for (const pre of document.querySelectorAll('pre[data-logs]:not([data-following])')) {
    pre.dataset.following = '1';
    const ws = new WebSocket(
      `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${pre.dataset.logs}`,
    );
    const style = {};
    let first = true;
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (first) {
        pre.textContent = '';
        first = false;
      }
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      const line = document.createElement('span');
      line.className = 'line';
      if (frame.kind === 'control') {
        if (frame.step_status !== 'start') return;
        line.classList.add('step');
        line.textContent = `▸ ${frame.content ?? ''}`;
      } else {
        // A carriage return redraws the line, as a terminal shows progress.
        const parts = String(frame.content ?? '').split('\r');
        const shown = parts.filter((p) => p !== '').pop() ?? '';
        line.append(renderAnsi(shown, style));
      }
      pre.append(line);
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    ws.onclose = () => {
      pre.dataset.done = '1';
    };
  }
}

// ---- Forms that change something for good ask first (without this script they post at once).
document.addEventListener('submit', (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});

followEvents();
startLogs();
