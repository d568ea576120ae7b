// Operator dashboard of MoonMind Broker. It talks to the REST API of the
// origin that served it, with the operator token from session storage in an
// Authorization header. The token never goes into a URL or a cookie.
'use strict';

(function () {
  const TOKEN_KEY = 'mmbroker.operatorToken';
  const POLL_INTERVAL_MS = 5000;
  const AUDIT_LIMIT = 20;
  const STALE_LIMIT = 100;
  const PAUSE_PATH = '/api/system/worker-pause';
  const EVENTS_PATH = '/api/system/worker-pause/events';

  // session is replaced at every sign-in and sign-out, so callbacks of an
  // older session can tell that they must not touch the page.
  let session = null;

  const el = (id) => document.getElementById(id);

  // ApiError is an error response of the API: status, stable code, message.
  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field || null;
    }
  }

  // UnreachableError means the request got no response from the API (network
  // failure, or a proxy reporting that the API is down).
  class UnreachableError extends Error {}

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token(), Accept: 'application/json' };
    const init = { method: method, headers: headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new UnreachableError(err.message || 'network error');
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!resp.ok) {
      if (data && typeof data.code === 'string') {
        throw new ApiError(resp.status, data.code, data.message || '', data.field);
      }
      if (resp.status === 502 || resp.status === 503 || resp.status === 504) {
        throw new UnreachableError('HTTP ' + resp.status);
      }
      throw new ApiError(resp.status, 'http_' + resp.status, text.slice(0, 200) || resp.statusText);
    }
    return data;
  }

  function describe(err) {
    if (err instanceof ApiError) {
      return err.message + ' (' + err.code + ', HTTP ' + err.status + ')';
    }
    if (err instanceof UnreachableError) {
      return 'Cannot reach the broker API (' + err.message + '). Check that brokerd runs, then try again.';
    }
    return String(err && err.message ? err.message : err);
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  function formatTime(value) {
    if (!value) {
      return '-';
    }
    const d = new Date(value);
    if (isNaN(d.getTime())) {
      return String(value);
    }
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function capitalize(s) {
    return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
  }

  // ---- Rendering ----

  function renderBanner(snap) {
    const banner = el('banner');
    if (snap.workersPaused) {
      banner.className = 'banner banner-paused';
      el('banner-title').textContent = 'Workers: Paused (' + capitalize(snap.mode || 'unknown mode') + ')';
      el('banner-detail').textContent =
        'Reason: ' + (snap.reason || '-') + ' · By: ' + (snap.requestedBy || '-') +
        ' · Since: ' + formatTime(snap.requestedAt) + ' · Version ' + snap.version;
    } else {
      banner.className = 'banner banner-running';
      el('banner-title').textContent = 'Workers: Running';
      el('banner-detail').textContent = 'Since: ' + formatTime(snap.updatedAt) + ' · Version ' + snap.version;
    }
  }

  function renderUnreachable(err) {
    el('banner').className = 'banner banner-error';
    if (err instanceof UnreachableError) {
      el('banner-title').textContent = 'Cannot reach the broker API';
      el('banner-detail').textContent = '(' + err.message + '). The state below may be out of date; retrying every 5 s.';
    } else {
      el('banner-title').textContent = 'The broker API reports an error';
      el('banner-detail').textContent = describe(err) + ' The state below may be out of date; retrying every 5 s.';
    }
    // Never leave an old "Safe to upgrade" or enabled controls on screen
    // while the real state is unknown.
    el('safe').hidden = true;
    el('drain-note').textContent = 'State unknown while the API cannot be reached.';
    for (const id of ['m-queued', 'm-delayed', 'm-running', 'm-stale', 'm-quiesced', 'm-dead', 'm-live', 'm-ack']) {
      setMetric(id, null);
    }
    el('pause-button').disabled = true;
    el('resume-button').disabled = true;
    el('force-row').hidden = true;
  }

  function setMetric(id, value) {
    el(id).textContent = value === undefined || value === null ? '-' : String(value);
  }

  function renderDrain(snap) {
    const m = snap.metrics || {};
    const w = snap.workers || {};
    setMetric('m-queued', m.queued);
    setMetric('m-delayed', m.delayed);
    setMetric('m-running', m.running);
    setMetric('m-stale', m.staleRunning);
    setMetric('m-quiesced', m.quiesced);
    setMetric('m-dead', m.deadLetter);
    setMetric('m-live', w.live);
    setMetric('m-ack', w.acknowledged);

    const safe = isSafe(snap);
    el('safe').hidden = !safe;
    if (!snap.workersPaused) {
      el('drain-note').textContent = 'The workers are running. Pause them to start a drain.';
    } else if (safe) {
      el('drain-note').textContent = 'No job is running or stale. The workers can be upgraded.';
    } else {
      el('drain-note').textContent = 'Waiting for ' + m.running + ' running and ' + m.staleRunning +
        ' stale job(s). Stale jobs stay until you requeue or cancel them below.';
    }
    el('live-note').textContent = snap.auditPending
      ? 'The latest change is not in the audit database yet; the broker writes it as soon as it can.'
      : '';
  }

  // isSafe is the only place that decides "Safe to upgrade": paused, and no
  // job running or stale.
  function isSafe(snap) {
    const m = snap.metrics || {};
    return snap.workersPaused === true && m.running === 0 && m.staleRunning === 0;
  }

  // A button stays disabled while its own request is in flight, even when
  // the event stream shows the new state first, so the request cannot be
  // sent twice.
  function renderControls(snap) {
    const s = session;
    el('pause-button').disabled = Boolean(s && s.pausing);
    el('resume-button').disabled = !snap.workersPaused || Boolean(s && s.resuming);
    el('resume-reason').disabled = !snap.workersPaused;
    const forceNeeded = snap.workersPaused && !isSafe(snap);
    el('force-row').hidden = !forceNeeded;
    if (!forceNeeded) {
      el('force-resume').checked = false;
    }
  }

  // cell appends a table cell. label names its column, so that the narrow
  // layout, which stacks the cells, can show it beside the value.
  function cell(row, label, text, className) {
    const td = document.createElement('td');
    td.dataset.label = label;
    td.textContent = text === undefined || text === null || text === '' ? '-' : String(text);
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
    return td;
  }

  function renderAudit(items) {
    const body = el('audit-rows');
    body.replaceChildren();
    for (const e of items) {
      const tr = document.createElement('tr');
      cell(tr, 'Time', formatTime(e.createdAt));
      cell(tr, 'Action', e.action);
      cell(tr, 'Mode', e.mode);
      cell(tr, 'Reason', e.reason);
      cell(tr, 'Actor', e.actor);
      cell(tr, 'Version', e.version);
      body.appendChild(tr);
    }
    if (items.length === 0) {
      const tr = document.createElement('tr');
      const td = cell(tr, '', 'No audit events yet.');
      td.colSpan = 6;
      body.appendChild(tr);
    }
  }

  function renderStale(items) {
    const body = el('stale-rows');
    body.replaceChildren();
    for (const job of items) {
      const tr = document.createElement('tr');
      cell(tr, 'Job', job.id, 'id');
      cell(tr, 'Type', job.type);
      cell(tr, 'Worker', job.claimedBy);
      cell(tr, 'Lease expired', formatTime(job.leaseExpiresAt));
      const actions = cell(tr, 'Actions', '', 'actions');
      actions.textContent = '';
      const group = document.createElement('div');
      group.appendChild(actionButton('Requeue', 'secondary', job, 'requeue'));
      group.appendChild(actionButton('Cancel', 'danger', job, 'cancel'));
      actions.appendChild(group);
      body.appendChild(tr);
    }
    el('stale-table').hidden = items.length === 0;
    el('stale-empty').hidden = items.length !== 0;
  }

  function actionButton(label, className, job, mode) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = className;
    b.textContent = label;
    b.setAttribute('aria-label', label + ' job ' + job.id);
    b.addEventListener('click', () => recoverJob(job.id, mode, b));
    return b;
  }

  // ---- Data loading ----

  async function loadAudit(s) {
    try {
      const page = await api('GET', '/api/system/control-events?limit=' + AUDIT_LIMIT);
      if (s !== session) {
        return;
      }
      const items = (page && page.items) || [];
      s.auditVersion = items.reduce((max, e) => Math.max(max, e.version || 0), 0);
      showError(el('audit-error'), '');
      renderAudit(items);
    } catch (err) {
      if (s === session) {
        showError(el('audit-error'), 'Could not load the audit history: ' + describe(err));
      }
    }
  }

  async function loadStale(s) {
    try {
      const page = await api('GET', '/api/queue/jobs?status=running&stale=true&limit=' + STALE_LIMIT);
      if (s !== session) {
        return;
      }
      showError(el('stale-error'), '');
      renderStale((page && page.items) || []);
    } catch (err) {
      if (s === session) {
        showError(el('stale-error'), 'Could not load the stale jobs: ' + describe(err));
      }
    }
  }

  // applySnapshot renders a fresh snapshot and reloads the lists whose
  // content it shows has changed.
  function applySnapshot(s, snap) {
    if (s !== session || !snap) {
      return;
    }
    const previous = s.snapshot;
    s.snapshot = snap;
    renderBanner(snap);
    renderDrain(snap);
    renderControls(snap);

    const versionChanged = !previous || previous.version !== snap.version;
    if (previous && versionChanged) {
      // An error about an earlier request no longer describes the state.
      showError(el('pause-error'), '');
      showError(el('resume-error'), '');
    }
    const staleChanged = !previous || (previous.metrics || {}).staleRunning !== (snap.metrics || {}).staleRunning;
    if (versionChanged || s.auditVersion < snap.version) {
      loadAudit(s);
    }
    if (versionChanged || staleChanged) {
      loadStale(s);
    }
  }

  async function refresh(s) {
    const snap = await api('GET', PAUSE_PATH);
    applySnapshot(s, snap);
  }

  function handleFailure(s, err) {
    if (s !== session) {
      return;
    }
    if (err instanceof ApiError && err.status === 401) {
      signOut('The API rejected the token (unauthorized): it may have been revoked. Sign in again.');
      return;
    }
    s.snapshot = null;
    renderUnreachable(err);
  }

  // ---- Live updates ----

  // followStream reads the server-sent event stream with fetch, because
  // EventSource cannot send an Authorization header. It returns when the
  // stream fails or ends; the caller then polls.
  async function followStream(s) {
    const controller = new AbortController();
    s.abort = controller;
    const resp = await fetch(EVENTS_PATH, {
      headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' },
      cache: 'no-store',
      credentials: 'omit',
      signal: controller.signal,
    });
    if (!resp.ok || !resp.body) {
      throw new UnreachableError('event stream returned HTTP ' + resp.status);
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) {
        throw new UnreachableError('the event stream ended');
      }
      buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        handleEvent(s, block);
      }
    }
  }

  function handleEvent(s, block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) {
        name = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
    if ((name === 'pause' || name === 'snapshot') && data.length > 0) {
      applySnapshot(s, JSON.parse(data.join('\n')));
    }
  }

  // live keeps the page current: it follows the event stream while it
  // works and otherwise reads the snapshot every 5 s, trying the stream
  // again after each successful read.
  async function live(s) {
    while (s === session) {
      try {
        await refresh(s);
      } catch (err) {
        handleFailure(s, err);
        await sleep(s, POLL_INTERVAL_MS);
        continue;
      }
      try {
        await followStream(s);
      } catch (err) {
        if (s !== session) {
          return;
        }
      }
      // The stream failed: read the snapshot at once, so a broker that
      // went away shows up in the banner without waiting.
      try {
        await refresh(s);
      } catch (err) {
        handleFailure(s, err);
      }
      await sleep(s, POLL_INTERVAL_MS);
    }
  }

  function sleep(s, ms) {
    return new Promise((resolve) => {
      s.timer = setTimeout(resolve, ms);
    });
  }

  // ---- Actions ----

  async function pause(event) {
    event.preventDefault();
    const s = session;
    const reasonField = el('pause-reason');
    const reason = reasonField.value.trim();
    const errorNode = el('pause-error');

    if (!reason) {
      reasonField.setAttribute('aria-invalid', 'true');
      showError(errorNode, 'Enter a reason: say why the workers are paused (at most 1000 characters). Nothing was changed.');
      reasonField.focus();
      return;
    }
    reasonField.removeAttribute('aria-invalid');

    const mode = document.querySelector('input[name="mode"]:checked').value;
    const body = { action: 'pause', mode: mode, reason: reason };
    if (s.snapshot) {
      body.expectedVersion = s.snapshot.version;
    }

    el('pause-button').disabled = true;
    s.pausing = true;
    try {
      const snap = await api('POST', PAUSE_PATH, body);
      s.pausing = false;
      showError(errorNode, '');
      clearIfUnchanged(reasonField, reason);
      applySnapshot(s, snap);
    } catch (err) {
      s.pausing = false;
      if (s !== session) {
        return;
      }
      if (err instanceof ApiError && err.field === 'reason') {
        reasonField.setAttribute('aria-invalid', 'true');
      }
      showError(errorNode, describe(err));
    } finally {
      if (s === session && s.snapshot) {
        renderControls(s.snapshot);
      }
    }
  }

  // clearIfUnchanged empties a reason field after its request succeeded,
  // unless the operator typed something else while the request was in
  // flight.
  function clearIfUnchanged(field, submitted) {
    if (field.value.trim() === submitted) {
      field.value = '';
    }
  }

  async function resume(event) {
    event.preventDefault();
    const s = session;
    const reasonField = el('resume-reason');
    const reason = reasonField.value.trim();
    const errorNode = el('resume-error');

    if (!reason) {
      reasonField.setAttribute('aria-invalid', 'true');
      showError(errorNode, 'Enter a reason: say why the workers resume (at most 1000 characters). Nothing was changed.');
      reasonField.focus();
      return;
    }
    reasonField.removeAttribute('aria-invalid');

    const body = { action: 'resume', reason: reason, forceResume: el('force-resume').checked };
    if (s.snapshot) {
      body.expectedVersion = s.snapshot.version;
    }

    el('resume-button').disabled = true;
    s.resuming = true;
    try {
      const snap = await api('POST', PAUSE_PATH, body);
      s.resuming = false;
      showError(errorNode, '');
      clearIfUnchanged(reasonField, reason);
      applySnapshot(s, snap);
    } catch (err) {
      s.resuming = false;
      if (s !== session) {
        return;
      }
      let message = describe(err);
      if (err instanceof ApiError && err.code === 'not_drained') {
        message += ' Tick "Force" to resume anyway, or requeue or cancel the stale jobs first.';
      }
      showError(errorNode, message);
    } finally {
      if (s === session && s.snapshot) {
        renderControls(s.snapshot);
      }
    }
  }

  async function recoverJob(id, mode, button) {
    const s = session;
    button.disabled = true;
    try {
      await api('POST', '/api/queue/jobs/' + encodeURIComponent(id) + '/recover', { mode: mode });
      showError(el('stale-error'), '');
      await loadStale(s);
      await refresh(s);
    } catch (err) {
      if (s === session) {
        showError(el('stale-error'), 'Could not ' + mode + ' job ' + id + ': ' + describe(err));
        button.disabled = false;
      }
    }
  }

  // ---- Sign in and out ----

  async function signIn(event) {
    event.preventDefault();
    const input = el('token-input');
    const value = input.value.trim();
    const errorNode = el('signin-error');
    if (!value) {
      input.setAttribute('aria-invalid', 'true');
      showError(errorNode, 'Enter an operator token.');
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    try {
      await api('GET', PAUSE_PATH);
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      let message = describe(err);
      if (err instanceof ApiError && err.status === 401) {
        message = 'The API rejected this token (unauthorized). Check it and try again.';
      } else if (err instanceof ApiError && err.status === 403) {
        message = 'This token may not operate the broker (forbidden). Use an operator token.';
      }
      input.setAttribute('aria-invalid', 'true');
      showError(errorNode, message);
      return;
    }
    input.value = '';
    input.removeAttribute('aria-invalid');
    showError(errorNode, '');
    start();
  }

  function start() {
    session = { snapshot: null, auditVersion: 0, abort: null, timer: null };
    el('signin-section').hidden = true;
    el('app').hidden = false;
    el('sign-out').hidden = false;
    el('banner-title').textContent = 'Loading the worker state...';
    el('banner-detail').textContent = '';
    live(session);
  }

  function signOut(message) {
    const s = session;
    session = null;
    if (s) {
      if (s.abort) {
        s.abort.abort();
      }
      clearTimeout(s.timer);
    }
    sessionStorage.removeItem(TOKEN_KEY);
    el('app').hidden = true;
    el('sign-out').hidden = true;
    el('signin-section').hidden = false;
    el('audit-rows').replaceChildren();
    el('stale-rows').replaceChildren();
    el('banner').className = 'banner banner-neutral';
    el('banner-title').textContent = 'Signed out. Sign in to see the worker state.';
    el('banner-detail').textContent = '';
    showError(el('signin-error'), typeof message === 'string' ? message : '');
    el('token-input').focus();
  }

  document.addEventListener('DOMContentLoaded', () => {
    el('signin-form').addEventListener('submit', signIn);
    el('pause-form').addEventListener('submit', pause);
    el('resume-form').addEventListener('submit', resume);
    el('sign-out').addEventListener('click', () => signOut());
    if (token()) {
      start();
    }
  });
})();
