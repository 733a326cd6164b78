// Berth's web console: plain JavaScript over berthd's own API (/v1/…), with the session
// cookie for authentication and X-Berth-CSRF on every change.
const csrf = document.querySelector('meta[name="berth-csrf"]').content;
const rows = new Map();   // domain name → <tr>
const lastStats = new Map(); // domain name → previous DomainStats (for CPU %)
let selected = null;
let terminal = null, terminalSocket = null, rfb = null, spice = null;

function showMessage(text) {
  const box = document.getElementById('message');
  box.textContent = text;
  box.hidden = !text;
}

// Every API call: a missing or expired session goes back to the login page.
async function api(path, options = {}) {
  const headers = Object.assign({ 'X-Berth-CSRF': csrf }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, credentials: 'same-origin' }));
  if (response.status === 401) { location.href = '/ui/login'; throw new Error('not logged in'); }
  return response;
}

async function explain(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message + (body.error.remedy ? '\n' + body.error.remedy : '') : response.statusText;
  } catch { return response.status + ' ' + response.statusText; }
}

// The guest's traffic over its tap NICs since the last sample; user-mode NICs keep no counters.
function networkRate(now, before, seconds) {
  const total = (stats, key) => stats.interfaces.filter(n => n[key] != null).reduce((sum, n) => sum + n[key], 0);
  if (!now.interfaces || !now.interfaces.some(n => n.rxBytes != null)) return now.interfaces && now.interfaces.length ? 'no counters (user-mode)' : '';
  const kib = key => ((total(now, key) - total(before, key)) / 1024 / seconds).toFixed(1);
  return `↓ ${kib('rxBytes')} ↑ ${kib('txBytes')} KiB/s`;
}

function mib(bytes) { return (bytes / 1048576).toFixed(0) + ' MiB'; }

async function loadDomains() {
  const response = await api('/v1/domains');
  if (!response.ok) { showMessage(await explain(response)); return; }
  const domains = await response.json();
  const body = document.querySelector('#domains tbody');
  const seen = new Set();
  for (const d of domains) {
    seen.add(d.name);
    let row = rows.get(d.name);
    if (!row) {
      row = document.createElement('tr');
      row.dataset.name = d.name;
      row.innerHTML = '<td><a class="name"></a></td><td class="state"></td><td class="vcpus"></td><td class="memory"></td>' +
        '<td class="cpu"></td><td class="rss"></td><td class="net"></td><td class="actions"></td>';
      row.querySelector('.name').textContent = d.name;
      row.querySelector('.name').onclick = () => select(d.name);
      for (const action of ['start', 'shutdown', 'destroy', 'reboot', 'suspend', 'resume']) {
        const button = document.createElement('button');
        button.textContent = action;
        button.dataset.action = action;
        button.onclick = () => act(d.name, action);
        row.querySelector('.actions').appendChild(button);
      }
      body.appendChild(row);
      rows.set(d.name, row);
    }
    setState(d.name, d.state);
    row.querySelector('.vcpus').textContent = d.vcpus;
    row.querySelector('.memory').textContent = d.memory + ' MiB';
  }
  for (const [name, row] of rows) if (!seen.has(name)) { row.remove(); rows.delete(name); }
}

function setState(name, state) {
  const row = rows.get(name);
  if (!row) return;
  const cell = row.querySelector('.state');
  cell.textContent = state;
  cell.className = 'state state-' + state.replace(' ', '-');
  row.dataset.state = state;
  if (state === 'shut off') for (const cell of ['.cpu', '.rss', '.net']) row.querySelector(cell).textContent = '';
}

async function act(name, action) {
  showMessage('');
  const response = await api(`/v1/domains/${encodeURIComponent(name)}/${action}`, { method: 'POST' });
  if (!response.ok) { showMessage(await explain(response)); return; }
  const operation = await response.json();
  // The list changes through the event stream; a failure is told here.
  const done = await api(`/v1/operations/${operation.id}?wait=120`);
  if (done.ok) {
    const info = await done.json();
    if (info.status === 'failed' && info.error) showMessage(info.error.message + '\n' + (info.error.remedy || ''));
  }
}

// Live state from the NDJSON event stream, read with fetch streaming; reconnects.
async function followEvents() {
  const live = document.getElementById('live');
  for (;;) {
    try {
      const response = await api('/v1/events');
      if (!response.ok) throw new Error(await explain(response));
      live.textContent = '● live'; live.className = 'on';
      await loadDomains();
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          const event = JSON.parse(line);
          if (!event.domain) continue;
          if (!rows.has(event.domain) || event.kind === 'undefined' || event.kind === 'defined') await loadDomains();
          else setState(event.domain, event.state);
          if (event.domain === selected) refreshDetails();
        }
      }
    } catch (error) {
      if (String(error).includes('not logged in')) return;
    }
    live.textContent = '○ reconnecting'; live.className = '';
    await new Promise(resolve => setTimeout(resolve, 2000));
  }
}

async function pollStats() {
  for (;;) {
    try {
      const response = await api('/v1/stats');
      if (response.ok) {
        for (const s of await response.json()) {
          const row = rows.get(s.name);
          if (!row) continue;
          const before = lastStats.get(s.name);
          if (before && before.pid === s.pid) {
            const seconds = (Date.parse(s.time) - Date.parse(before.time)) / 1000;
            if (seconds > 0) {
              row.querySelector('.cpu').textContent = (100 * (s.cpuSeconds - before.cpuSeconds) / seconds).toFixed(1) + ' %';
              row.querySelector('.net').textContent = networkRate(s, before, seconds);
            }
          }
          row.querySelector('.rss').textContent = mib(s.rssBytes);
          lastStats.set(s.name, s);
        }
      }
    } catch (error) {
      if (String(error).includes('not logged in')) return;
    }
    await new Promise(resolve => setTimeout(resolve, 2000));
  }
}

function select(name) {
  selected = name;
  document.getElementById('domain').hidden = false;
  document.getElementById('domain-name').textContent = name;
  showTab('details');
}

async function refreshDetails() {
  if (!selected) return;
  const response = await api(`/v1/domains/${encodeURIComponent(selected)}`);
  document.getElementById('details').textContent = response.ok ? JSON.stringify(await response.json(), null, 2) : await explain(response);
}

function closeConsoles() {
  if (terminalSocket) { terminalSocket.close(); terminalSocket = null; }
  if (rfb) { rfb.disconnect(); rfb = null; }
  if (spice) { spice.stop(); spice = null; }
}

async function showTab(tab) {
  closeConsoles();
  for (const element of document.querySelectorAll('.tab')) element.hidden = element.id !== 'tab-' + tab;
  for (const button of document.querySelectorAll('#domain nav button')) button.classList.toggle('active', button.dataset.tab === tab);
  const name = encodeURIComponent(selected);
  if (tab === 'details') await refreshDetails();
  if (tab === 'log') {
    const response = await api(`/v1/domains/${name}/console?tail=65536`);
    document.getElementById('log').textContent = response.ok ? await response.text() : await explain(response);
  }
  if (tab === 'serial') await openSerial(name);
  if (tab === 'display') await openDisplay(name);
}

// A library the page needs failed to load: berthd's answer names the Debian package.
async function missingLibrary(url) {
  const response = await fetch(url, { credentials: 'same-origin' });
  return response.ok ? `${url} did not load.` : await explain(response);
}

function socketURL(path) { return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path; }

async function openSerial(name) {
  const holder = document.getElementById('terminal');
  if (!window.Terminal) { showMessage(await missingLibrary('/ui/xterm-bundle.js')); return; }
  if (!terminal) {
    terminal = new window.Terminal({ cols: 100, rows: 30, rendererType: 'dom', theme: { foreground: '#e8e8e8', background: '#000000' } });
    terminal.open(holder);
    terminal.on('data', data => {
      if (terminalSocket && terminalSocket.readyState === WebSocket.OPEN) terminalSocket.send(new TextEncoder().encode(data));
    });
  }
  terminal.reset();
  // What the guest printed before: the log's tail, then the live line.
  const log = await api(`/v1/domains/${name}/console?tail=2048`);
  if (log.ok) terminal.write((await log.text()).replace(/\r?\n/g, '\r\n'));
  const decoder = new TextDecoder();
  const socket = new WebSocket(socketURL(`/v1/domains/${name}/console/ws`));
  socket.binaryType = 'arraybuffer';
  socket.onmessage = event => terminal.write(decoder.decode(new Uint8Array(event.data), { stream: true }));
  socket.onclose = event => { if (terminalSocket === socket) terminal.write(`\r\n[console closed${event.reason ? ': ' + event.reason : ''}]\r\n`); };
  socket.onerror = () => showMessage('The serial console could not be opened: is the domain running?');
  terminalSocket = socket;
  terminal.focus();
}

// The graphical console through berthd's WebSocket proxy: noVNC for VNC, spice-html5 for SPICE.
async function openDisplay(name) {
  const status = document.getElementById('display-status');
  document.getElementById('screen').textContent = '';
  const response = await api(`/v1/domains/${name}/display`);
  if (!response.ok) { status.textContent = await explain(response); return; }
  const display = await response.json();
  status.textContent = 'connecting…';
  if (display.kind === 'spice') await openSPICE(display, status);
  else await openVNC(display, status);
}

async function openVNC(display, status) {
  let RFB;
  try {
    RFB = (await import('/ui/lib/novnc/core/rfb.js')).default;
  } catch {
    status.textContent = await missingLibrary('/ui/lib/novnc/core/rfb.js');
    return;
  }
  rfb = new RFB(document.getElementById('screen'), socketURL(display.webSocket), { wsProtocols: ['binary'] });
  rfb.scaleViewport = false;
  rfb.addEventListener('connect', () => { status.textContent = 'connected (VNC)'; });
  rfb.addEventListener('disconnect', event => { status.textContent = event.detail.clean ? 'disconnected' : 'the display closed'; });
  rfb.addEventListener('credentialsrequired', () => {
    const password = prompt('VNC password');
    if (password !== null) rfb.sendCredentials({ password });
  });
}

async function openSPICE(display, status) {
  let Spice;
  try {
    Spice = await import('/ui/lib/spice-html5/main.js');
  } catch {
    status.textContent = await missingLibrary('/ui/lib/spice-html5/main.js');
    return;
  }
  // A unix-socket display has no ticket; a TCP one asks for its password.
  const password = display.socket ? '' : (display.password || prompt('SPICE password') || '');
  const connection = new Spice.SpiceMainConn({
    uri: socketURL(display.webSocket), screen_id: 'screen', password,
    onsuccess: () => { if (spice === connection) status.textContent = 'connected (SPICE)'; },
    onerror: error => { if (spice === connection) status.textContent = 'the display closed: ' + error.message; },
  });
  spice = connection;
}

// The new-guest form: the InstallPlan `berth install` sends (POST /v1/domains/{name}/install),
// then the operation's progress and, once the installer runs, the guest's serial console.
async function openInstallForm() {
  document.getElementById('new-guest').hidden = false;
  const select = document.querySelector('#install-form select[name=media]');
  const response = await api('/v1/media');
  if (!response.ok) { showMessage(await explain(response)); return; }
  while (select.options.length > 1) select.remove(1);
  for (const media of await response.json()) {
    if (!media.location) continue;  // berthd serves no media (--media-listen none)
    const option = document.createElement('option');
    option.value = media.location;
    option.textContent = `${media.name} (${media.kind} ${media.path})`;
    select.appendChild(option);
  }
}

function installPlan(form) {
  const field = key => form.elements[key].value.trim();
  const name = field('name');
  const url = field('media') || field('location');
  if (!url) throw new Error('Choose an install tree from the media library, or give a location URL.');
  // A pasted kickstart travels with the plan (berthd publishes it under an unguessable name);
  // a URL is berthd's to fetch. Either way the installer is told ks=, which berthd rewrites.
  const text = form.elements.kickstart.value;
  const kickstart = text.trim() ? { origin: `${name}.ks`, text } : field('ks') ? { origin: field('ks') } : null;
  const gib = Number(field('disk'));
  return {
    source: { location: { url } },
    domain: {
      name, memory: Number(field('memory')), vcpus: Number(field('vcpus')), arch: 'x86_64', bootloader: {},
      disks: [{ path: '', volume: `default/${name}.img`, format: 'raw', device: 'disk', bus: 'virtio' }],
      nics: [{ mode: 'user' }], onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'destroy',
      notes: [`installed from ${url} (web console)`],
    },
    newDisks: [{ index: 0, sizeBytes: Math.round(gib * 1024) * 1048576, format: 'raw' }],
    extraArgs: kickstart ? [`ks=${kickstart.origin}`] : [],
    serialConsole: true, kickstart, initrdInjections: [], noReboot: false, force: false,
  };
}

function progressLine(text, className) {
  const item = document.createElement('li');
  item.textContent = text;
  if (className) item.className = className;
  document.getElementById('install-progress').appendChild(item);
}

async function submitInstall(event) {
  event.preventDefault();
  const form = event.target;
  document.getElementById('install-progress').textContent = '';
  showMessage('');
  let plan;
  try { plan = installPlan(form); } catch (error) { showMessage(error.message); return; }
  const name = plan.domain.name;
  const response = await api(`/v1/domains/${encodeURIComponent(name)}/install`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(plan),
  });
  if (!response.ok) { progressLine(await explain(response), 'failed'); return; }
  const operation = await response.json();
  progressLine(`install of ${name} started (operation ${operation.id})`);
  await followInstall(operation.id, name);
}

// Polls the operation (?wait returns as soon as it ends) and prints each new message.
async function followInstall(id, name) {
  let shown = 0, consoleOpened = false;
  for (;;) {
    const response = await api(`/v1/operations/${id}?wait=2`);
    if (!response.ok) { progressLine(await explain(response), 'failed'); return; }
    const info = await response.json();
    for (const message of (info.messages || []).slice(shown)) progressLine(message.text, message.level);
    shown = (info.messages || []).length;
    const running = (info.messages || []).some(m => m.phase === 'installer-running');
    if (running && !consoleOpened && rows.has(name)) { consoleOpened = true; select(name); showTab('serial'); }
    if (info.status === 'succeeded') {
      progressLine(`${name} is installed.`, 'done');
      // The installer's console closed with it: follow the installed guest's.
      if (selected === name && !document.getElementById('tab-serial').hidden) showTab('serial');
      return;
    }
    if (info.status === 'failed') {
      progressLine(info.error ? info.error.message + (info.error.remedy ? ' ' + info.error.remedy : '') : 'the install failed', 'failed');
      return;
    }
  }
}

document.getElementById('new-guest-button').onclick = () => openInstallForm();
document.getElementById('install-cancel').onclick = () => { document.getElementById('new-guest').hidden = true; };
document.getElementById('install-form').addEventListener('submit', submitInstall);
for (const button of document.querySelectorAll('#domain nav button')) button.onclick = () => showTab(button.dataset.tab);
document.getElementById('logout-form').addEventListener('submit', event => {
  event.preventDefault();
  api('/ui/logout', { method: 'POST' }).finally(() => { location.href = '/ui/login'; });
});
api('/v1/host').then(async r => { if (r.ok) { const h = await r.json(); document.getElementById('host').textContent = h.hostname || ''; } }).catch(() => {});
loadDomains();
followEvents();
pollStats();
