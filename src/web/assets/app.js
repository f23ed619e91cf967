// emag-sync dashboard: vanilla JS, no framework, no inline handlers (the CSP forbids them).
// Reads /api/status, follows /api/events (SSE) and calls the JSON API; everything it shows
// comes from the server's one status model.
'use strict';

(() => {
  const I18N = {
    ro: {
      subtitle: 'Sincronizare eMAG Marketplace',
      'live.connecting': 'Se conectează…', 'live.live': 'În timp real', 'live.down': 'Deconectat, reîncerc…',
      'auth.button': 'Acces', 'auth.title': 'Acces la comenzi',
      'auth.help': 'Comenzile (sincronizare, pauză, anulare) cer tokenul din EMAG_DASHBOARD_TOKEN. Autentificarea deschide o sesiune de 12 ore; pagina nu păstrează tokenul.',
      'auth.label': 'Token', 'auth.placeholder': 'Lipiți tokenul aici', 'auth.save': 'Autentificare', 'auth.forget': 'Ieșire',
      'auth.set': 'Sesiune deschisă: comenzile sunt permise.', 'auth.none': 'Nicio sesiune: comenzile cer autentificare.',
      'auth.loopback': 'Server local fără token: comenzile sunt permise de pe acest calculator.',
      'auth.wrong': 'Tokenul nu este cel al panoului.', 'auth.unavailable': 'Serverul nu are token configurat (EMAG_DASHBOARD_TOKEN).',
      'auth.needed': 'Comanda cere autentificare cu tokenul de acces.',
      loading: 'Se încarcă…', close: 'Închide',
      'state.idle': 'În așteptare', 'state.running': 'Rulează', 'state.paused': 'În pauză', 'state.needs_attention': 'Necesită atenție',
      'kind.offers': 'Oferte', 'kind.orders': 'Comenzi', 'kind.reference': 'Date de referință', 'kind.returns': 'Retururi',
      'outcome.succeeded': 'reușită', 'outcome.failed': 'eșuată', 'outcome.cancelled': 'anulată', 'outcome.interrupted': 'întreruptă',
      'outcome.running': 'rulează', 'outcome.queued': 'în coadă',
      'f.last': 'Ultima', 'f.next': 'Următoarea', 'f.fresh': 'Prospețime', 'never': 'niciodată',
      'next.due': 'acum', 'next.running': 'rulează acum', 'next.paused': 'în pauză', 'next.when_asked': 'la cerere',
      'next.waits_for': 'după rularea #{id}', 'next.after_stopped_run': 'după reluarea #{id}', 'next.never': 'niciodată',
      'btn.sync': 'Sincronizează', 'btn.cancel': 'Anulează', 'btn.pause': 'Pauză', 'btn.resume': 'Reia',
      'paused.note': 'Contul este în pauză: nu se programează nimic.',
      'attention.title': 'Necesită atenție', 'attention.since': 'din {t}',
      'progress.page': 'pagina {p}', 'progress.items': '{n} articole', 'progress.of': '{n} din {t}',
      'progress.rate': '{r}/s', 'progress.eta': 'ETA {t}', 'progress.stalled': 'procesul nu mai răspunde; se reia la următorul tick',
      'sum.accounts': 'Conturi', 'sum.running': 'Rulează acum', 'sum.errors': 'Erori (1 h)', 'sum.scheduler': 'Planificator',
      'sched.up': 'activ', 'sched.down': 'oprit',
      'history.title': 'Istoric rulări', 'history.empty': 'Nicio rulare.', 'history.more': 'Mai multe',
      'history.unavailable': 'Istoricul nu este disponibil pe acest server.',
      'filter.all_accounts': 'Toate conturile', 'filter.all_kinds': 'Toate tipurile', 'filter.all_outcomes': 'Toate rezultatele',
      'col.account': 'Cont', 'col.kind': 'Tip', 'col.outcome': 'Rezultat', 'col.started': 'Pornită', 'col.duration': 'Durată', 'col.items': 'Articole',
      'charts.title': 'Grafice', 'charts.runs': 'Rulări reușite / eșuate', 'charts.duration': 'Durată (mediană, max)',
      'charts.items': 'Articole citite', 'charts.freshness': 'Timp cu date proaspete', 'charts.empty': 'Nicio rulare în interval.',
      'charts.unavailable': 'Graficele nu sunt disponibile pe acest server.', 'charts.target': 'țintă {v}',
      'range.24h': '24 h', 'range.7d': '7 zile', 'range.30d': '30 zile',
      'kpi.title': 'Indicatori', 'kpi.7d': '7 zile', 'kpi.30d': '30 zile', 'kpi.success': 'Rată de succes', 'kpi.fresh': 'Date proaspete',
      'kpi.recovery': 'Recuperare (max)', 'kpi.uptime': 'Disponibilitate', 'kpi.target': 'țintă {t}', 'kpi.unavailable': 'Indicatorii nu sunt disponibili.',
      'kpi.none': '—',
      'errors.title': 'Erori și avertismente recente', 'errors.none': 'Nicio eroare în ultimele 24 de ore.',
      'logs.errors': '{n} erori / oră', 'logs.warnings': '{n} avertismente / oră',
      'run.title': 'Rularea #{id}', 'run.account': 'Cont', 'run.kind': 'Tip', 'run.trigger': 'Declanșator', 'run.state': 'Stare',
      'run.attempt': 'Încercări', 'run.created': 'Creată', 'run.started': 'Pornită', 'run.finished': 'Încheiată', 'run.duration': 'Durată',
      'run.checkpoint': 'Punct de control', 'run.checkpoint_v': 'pagina {p}', 'run.cancel_requested': 'Anulare cerută', 'run.total': 'Total eMAG', 'run.error': 'Eroare',
      'run.emag': 'Mesajele eMAG', 'run.counts': 'Contoare', 'run.note': 'Notă', 'run.reclaimed': 'Preluată de la',
      'trigger.manual': 'manual', 'trigger.scheduled': 'programat', 'trigger.retry': 'reîncercare', 'trigger.catch_up': 'recuperare',
      'toast.queued': 'Rularea #{id} a fost pusă în coadă.', 'toast.joined': 'Se alătură rulării #{id} deja active.',
      'toast.paused': 'Contul {a} este în pauză.', 'toast.resumed': 'Contul {a} a fost reluat.', 'toast.cancelled': 'Anularea rulării #{id} a fost cerută.',
      'toast.unavailable': 'Comanda nu este disponibilă pe acest server.', 'toast.failed': 'Eroare: {m}',
      'foot.updated': 'Actualizat {t}', 'foot.instances': '{n} instanțe active', 'foot.reclaimed': '{n} preluări (24 h)',
      'ago.now': 'acum',
      'alerts.stale': '{n} tipuri de date nu sunt proaspete (detalii)',
      'incidents.title': 'Incidente', 'incidents.none': 'Niciun incident deschis.', 'incidents.ack': 'Am văzut',
      'incidents.resolve': 'Rezolvat', 'incidents.history': 'Rezolvate recent ({n})', 'incidents.since': 'din {t}',
      'incidents.state.firing': 'activ', 'incidents.state.acknowledged': 'văzut', 'incidents.state.resolved': 'rezolvat',
      'incidents.by': 'rezolvat {t} de {by}', 'incidents.escalated': 'escaladat {t}', 'toast.incident': 'Incidentul {id}: {s}.',
      'count.pages': 'pagini', 'count.items_read': 'articole citite', 'count.created': 'create', 'count.updated': 'actualizate',
      'count.unchanged': 'neschimbate', 'count.removed': 'eliminate', 'count.requests': 'cereri eMAG',
      'count.rate_limit_waits': 'așteptări pentru limita de rată', 'count.retries': 'reîncercări',
    },
    en: {
      subtitle: 'eMAG Marketplace sync',
      'live.connecting': 'Connecting…', 'live.live': 'Live', 'live.down': 'Disconnected, retrying…',
      'auth.button': 'Access', 'auth.title': 'Access to controls',
      'auth.help': 'Controls (sync, pause, cancel) need the token of EMAG_DASHBOARD_TOKEN. Logging in opens a 12-hour session; the page does not keep the token.',
      'auth.label': 'Token', 'auth.placeholder': 'Paste the token here', 'auth.save': 'Log in', 'auth.forget': 'Log out',
      'auth.set': 'Session open: controls are allowed.', 'auth.none': 'No session: controls need a login.',
      'auth.loopback': 'Local server without a token: controls are allowed from this machine.',
      'auth.wrong': 'That is not the dashboard\'s token.', 'auth.unavailable': 'The server has no token configured (EMAG_DASHBOARD_TOKEN).',
      'auth.needed': 'This control needs a login with the access token.',
      loading: 'Loading…', close: 'Close',
      'state.idle': 'Idle', 'state.running': 'Running', 'state.paused': 'Paused', 'state.needs_attention': 'Needs attention',
      'kind.offers': 'Offers', 'kind.orders': 'Orders', 'kind.reference': 'Reference data', 'kind.returns': 'Returns',
      'outcome.succeeded': 'succeeded', 'outcome.failed': 'failed', 'outcome.cancelled': 'cancelled', 'outcome.interrupted': 'interrupted',
      'outcome.running': 'running', 'outcome.queued': 'queued',
      'f.last': 'Last', 'f.next': 'Next', 'f.fresh': 'Freshness', 'never': 'never',
      'next.due': 'now', 'next.running': 'running now', 'next.paused': 'paused', 'next.when_asked': 'when asked',
      'next.waits_for': 'after run #{id}', 'next.after_stopped_run': 'after resuming #{id}', 'next.never': 'never',
      'btn.sync': 'Sync now', 'btn.cancel': 'Cancel', 'btn.pause': 'Pause', 'btn.resume': 'Resume',
      'paused.note': 'This account is paused: nothing is scheduled.',
      'attention.title': 'Needs attention', 'attention.since': 'since {t}',
      'progress.page': 'page {p}', 'progress.items': '{n} items', 'progress.of': '{n} of {t}',
      'progress.rate': '{r}/s', 'progress.eta': 'ETA {t}', 'progress.stalled': 'its process stopped answering; the next tick resumes it',
      'sum.accounts': 'Accounts', 'sum.running': 'Running now', 'sum.errors': 'Errors (1 h)', 'sum.scheduler': 'Scheduler',
      'sched.up': 'up', 'sched.down': 'down',
      'history.title': 'Run history', 'history.empty': 'No runs.', 'history.more': 'More',
      'history.unavailable': 'The run history is not available on this server.',
      'filter.all_accounts': 'All accounts', 'filter.all_kinds': 'All kinds', 'filter.all_outcomes': 'All outcomes',
      'col.account': 'Account', 'col.kind': 'Kind', 'col.outcome': 'Outcome', 'col.started': 'Started', 'col.duration': 'Duration', 'col.items': 'Items',
      'charts.title': 'Charts', 'charts.runs': 'Runs succeeded / failed', 'charts.duration': 'Duration (median, max)',
      'charts.items': 'Items read', 'charts.freshness': 'Time with fresh data', 'charts.empty': 'No runs in this range.',
      'charts.unavailable': 'Charts are not available on this server.', 'charts.target': 'target {v}',
      'range.24h': '24 h', 'range.7d': '7 days', 'range.30d': '30 days',
      'kpi.title': 'KPIs', 'kpi.7d': '7 days', 'kpi.30d': '30 days', 'kpi.success': 'Success rate', 'kpi.fresh': 'Fresh data',
      'kpi.recovery': 'Recovery (max)', 'kpi.uptime': 'Uptime', 'kpi.target': 'target {t}', 'kpi.unavailable': 'KPIs are not available.',
      'kpi.none': '—',
      'errors.title': 'Recent errors and warnings', 'errors.none': 'No errors in the last 24 hours.',
      'logs.errors': '{n} errors / hour', 'logs.warnings': '{n} warnings / hour',
      'run.title': 'Run #{id}', 'run.account': 'Account', 'run.kind': 'Kind', 'run.trigger': 'Trigger', 'run.state': 'State',
      'run.attempt': 'Attempts', 'run.created': 'Created', 'run.started': 'Started', 'run.finished': 'Finished', 'run.duration': 'Duration',
      'run.checkpoint': 'Checkpoint', 'run.checkpoint_v': 'page {p}', 'run.cancel_requested': 'Cancel requested', 'run.total': 'eMAG total', 'run.error': 'Error',
      'run.emag': "eMAG's messages", 'run.counts': 'Counts', 'run.note': 'Note', 'run.reclaimed': 'Taken over from',
      'trigger.manual': 'manual', 'trigger.scheduled': 'scheduled', 'trigger.retry': 'retry', 'trigger.catch_up': 'catch-up',
      'toast.queued': 'Run #{id} queued.', 'toast.joined': 'Joined run #{id}, already active.',
      'toast.paused': 'Account {a} paused.', 'toast.resumed': 'Account {a} resumed.', 'toast.cancelled': 'Cancellation of run #{id} requested.',
      'toast.unavailable': 'This control is not available on this server.', 'toast.failed': 'Error: {m}',
      'foot.updated': 'Updated {t}', 'foot.instances': '{n} live instances', 'foot.reclaimed': '{n} takeovers (24 h)',
      'ago.now': 'now',
      'alerts.stale': '{n} kinds of data are not fresh (details)',
      'incidents.title': 'Incidents', 'incidents.none': 'No open incident.', 'incidents.ack': 'Acknowledge',
      'incidents.resolve': 'Resolve', 'incidents.history': 'Recently resolved ({n})', 'incidents.since': 'since {t}',
      'incidents.state.firing': 'firing', 'incidents.state.acknowledged': 'acknowledged', 'incidents.state.resolved': 'resolved',
      'incidents.by': 'resolved {t} by {by}', 'incidents.escalated': 'escalated {t}', 'toast.incident': 'Incident {id}: {s}.',
      'count.pages': 'pages', 'count.items_read': 'items read', 'count.created': 'created', 'count.updated': 'updated',
      'count.unchanged': 'unchanged', 'count.removed': 'removed', 'count.requests': 'eMAG requests',
      'count.rate_limit_waits': 'rate-limit waits', 'count.retries': 'retries',
    },
  };
  const KINDS = ['offers', 'orders', 'reference', 'returns'];
  const OUTCOMES = ['succeeded', 'failed', 'cancelled', 'interrupted', 'running', 'queued'];

  const store = {
    get(k) { try { return window.localStorage.getItem(k); } catch (_) { return null; } },
    set(k, v) { try { window.localStorage.setItem(k, v); } catch (_) { /* private mode */ } },
  };

  const state = {
    lang: store.get('emag-sync.lang') === 'en' ? 'en' : 'ro',
    // What this client may do (GET /api/session): {may_change, via, token_configured}.
    session: null,
    status: null,
    // Live progress by run id, from run_progress events: {items_per_s, page, items_read, total}.
    live: new Map(),
    runs: { items: [], next: null, available: true },
    kpiDays: 7,
    // GET /api/alerts: the incidents, open first.
    incidents: null,
    // Charts: GET /api/series.
    range: '24h',
    series: null,
    seriesAvailable: true,
    kpiAvailable: true,
    // Controls answered 404 by this server: hidden.
    missing: new Set(),
  };

  // ---- helpers -------------------------------------------------------------------------
  const $ = (sel) => document.querySelector(sel);
  function t(key, vars) {
    let s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split('{' + k + '}').join(String(v));
    return s;
  }
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // Times come as Unix ms or RFC 3339 text.
  function toMs(v) {
    if (v === null || v === undefined || v === '') return null;
    if (typeof v === 'number') return v;
    const ms = Date.parse(v);
    return Number.isNaN(ms) ? null : ms;
  }
  const locale = () => (state.lang === 'ro' ? 'ro-RO' : 'en-GB');
  function fmtNum(n) { return n === null || n === undefined ? '—' : new Intl.NumberFormat(locale()).format(n); }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || ms < 0) return '—';
    const s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60 ? (s % 60) + ' s' : '');
    const hh = Math.floor(m / 60);
    if (hh < 48) return hh + ' h ' + (m % 60 ? (m % 60) + ' min' : '');
    return Math.floor(hh / 24) + ' d ' + (hh % 24 ? (hh % 24) + ' h' : '');
  }
  function fmtAgo(v) {
    const ms = toMs(v);
    if (ms === null) return t('never');
    const diff = (ms - Date.now()) / 1000;
    const abs = Math.abs(diff);
    if (abs < 10) return t('ago.now');
    const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' });
    if (abs < 60) return rtf.format(Math.round(diff), 'second');
    if (abs < 3600) return rtf.format(Math.round(diff / 60), 'minute');
    if (abs < 172800) return rtf.format(Math.round(diff / 3600), 'hour');
    return rtf.format(Math.round(diff / 86400), 'day');
  }
  function fmtTime(v) {
    const ms = toMs(v);
    if (ms === null) return '—';
    return new Date(ms).toLocaleString(locale(), { dateStyle: 'short', timeStyle: 'medium' });
  }
  function pct(x) { return x === null || x === undefined ? t('kpi.none') : (x * 100).toFixed(x >= 0.999 && x < 1 ? 2 : 1) + ' %'; }
  function kindName(k) { return t('kind.' + k); }
  function outcomeOf(run) { return run.state || run.outcome || (run.finished_at ? 'succeeded' : 'running'); }

  let toastTimer = null;
  function toast(msg) {
    const el = $('#toast');
    el.textContent = msg;
    el.classList.remove('hidden');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => el.classList.add('hidden'), 4000);
  }

  // ---- HTTP ----------------------------------------------------------------------------
  async function getJson(path) {
    const r = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!r.ok) { const e = new Error(path + ': ' + r.status); e.status = r.status; throw e; }
    return r.json();
  }
  // A mutation, authorised by the session cookie (HttpOnly: the page never holds the token).
  async function post(path, body, control) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, { method: 'POST', headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      toast(t('toast.failed', { m: e.message }));
      return null;
    }
    if (r.status === 404 || r.status === 405) {
      let problem = null;
      try { problem = await r.json(); } catch (_) { /* not JSON */ }
      // An unknown route hides the control; an unknown account or run is an error to show.
      if (!problem || problem.type === 'about:blank') {
        state.missing.add(control);
        toast(t('toast.unavailable'));
        render();
        return null;
      }
      toast(t('toast.failed', { m: problem.detail || problem.title }));
      return null;
    }
    if (r.status === 401 || r.status === 403) {
      toast(t('auth.needed'));
      showAuth(true);
      return null;
    }
    let json = null;
    try { json = await r.json(); } catch (_) { /* empty body */ }
    if (!r.ok) {
      toast(t('toast.failed', { m: (json && (json.detail || json.title)) || r.status }));
      return null;
    }
    return json || {};
  }

  // ---- actions -------------------------------------------------------------------------
  async function syncNow(account, kind, button) {
    button.disabled = true;
    const res = await post('/api/accounts/' + encodeURIComponent(account) + '/sync', { kind, full: false }, 'sync');
    button.disabled = false;
    if (!res) return;
    toast(t(res.joined ? 'toast.joined' : 'toast.queued', { id: res.run_id }));
    refreshSoon();
  }
  async function setPaused(account, paused, button) {
    button.disabled = true;
    const res = await post('/api/accounts/' + encodeURIComponent(account) + (paused ? '/pause' : '/resume'), undefined, 'pause');
    button.disabled = false;
    if (!res) return;
    toast(t(paused ? 'toast.paused' : 'toast.resumed', { a: account }));
    refreshSoon();
  }
  async function cancelRun(id, button) {
    button.disabled = true;
    const res = await post('/api/runs/' + id + '/cancel', undefined, 'cancel');
    button.disabled = false;
    if (!res) return;
    toast(t('toast.cancelled', { id }));
    refreshSoon();
  }

  async function incidentAction(id, verb, button) {
    button.disabled = true;
    const res = await post('/api/alerts/' + id + '/' + verb, undefined, 'incident');
    button.disabled = false;
    if (!res) return;
    toast(t('toast.incident', { id, s: t('incidents.state.' + res.state) }));
    loadIncidents();
  }

  async function loadIncidents() {
    try { state.incidents = await getJson('/api/alerts'); } catch (_) { state.incidents = null; }
    renderIncidents();
  }

  function renderIncidents() {
    const el = $('#incidents-body');
    el.replaceChildren();
    const all = state.incidents || [];
    const open = all.filter((i) => i.state !== 'resolved');
    const done = all.filter((i) => i.state === 'resolved').slice(0, 10);
    const controls = !state.missing.has('incident');
    const view = (i) => h('div', { class: 'incident ' + i.severity + ' ' + i.state, 'data-incident': i.id },
      h('strong', { text: i.message }),
      h('span', { class: 'fix', text: i.action }),
      h('span', { class: 'meta', text: `#${i.id} · ${t('incidents.state.' + i.state)} · ${t('incidents.since', { t: fmtAgo(i.opened_at) })}`
        + (i.escalated_at ? ` · ${t('incidents.escalated', { t: fmtAgo(i.escalated_at) })}` : '') }),
      controls ? h('div', { class: 'row' },
        i.state === 'firing' ? h('button', { type: 'button', class: 'btn small', 'data-action': 'ack', text: t('incidents.ack'), onclick: (e) => incidentAction(i.id, 'ack', e.currentTarget) }) : null,
        h('button', { type: 'button', class: 'btn small', 'data-action': 'resolve', text: t('incidents.resolve'), onclick: (e) => incidentAction(i.id, 'resolve', e.currentTarget) })) : null);
    if (!open.length) el.append(h('p', { class: 'muted', text: t('incidents.none') }));
    for (const i of open) el.append(view(i));
    if (done.length) {
      el.append(h('details', null,
        h('summary', { class: 'muted', text: t('incidents.history', { n: done.length }) }),
        done.map((i) => h('div', { class: 'incident info resolved', 'data-incident': i.id },
          h('span', { text: i.message }),
          h('span', { class: 'meta', text: t('incidents.by', { t: fmtAgo(i.resolved_at), by: i.resolved_by || '?' }) })))));
    }
  }

  // ---- rendering -----------------------------------------------------------------------
  function accounts() {
    const a = state.status && state.status.scheduler && state.status.scheduler.accounts;
    // The main account first, then by name.
    return a ? Object.entries(a).sort(([x, ax], [y, ay]) => ((ax.account_type === 'main') === (ay.account_type === 'main') ? x.localeCompare(y) : ax.account_type === 'main' ? -1 : 1)) : [];
  }

  function renderSummary() {
    const el = $('#summary');
    el.replaceChildren();
    const s = state.status;
    if (!s) return;
    const list = accounts();
    const running = list.reduce((n, [, a]) => n + (a.kinds || []).filter((k) => k.progress).length, 0);
    const errors = (s.logs && s.logs.errors_last_hour) || 0;
    const up = s.scheduler && s.scheduler.scheduler_running;
    const stat = (label, value, level) => h('div', { class: 'stat ' + (level || '') }, h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }));
    el.append(
      stat(t('sum.accounts'), fmtNum(list.length)),
      stat(t('sum.running'), fmtNum(running), running ? '' : 'ok'),
      stat(t('sum.errors'), fmtNum(errors), errors ? 'critical' : 'ok'),
      stat(t('sum.scheduler'), t(up ? 'sched.up' : 'sched.down'), up ? 'ok' : 'warning'),
    );
  }

  function renderAlerts() {
    const el = $('#alerts');
    el.replaceChildren();
    // Attention is shown on its account's card; stale data beyond two is folded into one
    // line (with a thousand accounts the list would bury everything else).
    const alerts = ((state.status && state.status.alerts) || []).filter((a) => a.type !== 'needs_attention');
    const stale = alerts.filter((a) => a.type === 'stale_data');
    const view = (a) => h('div', { class: 'alert ' + (a.severity === 'critical' ? 'critical' : 'warning') },
      h('strong', { text: a.message }),
      a.action ? h('span', { class: 'fix', text: a.action }) : null);
    for (const a of alerts) if (a.type !== 'stale_data' || stale.length <= 2) el.append(view(a));
    if (stale.length > 2) {
      const worst = stale.some((a) => a.severity === 'critical') ? 'critical' : 'warning';
      el.append(h('details', { class: 'alert ' + worst },
        h('summary', null, h('strong', { text: t('alerts.stale', { n: stale.length }) })),
        h('ul', { class: 'msgs' }, stale.map((a) => h('li', { text: a.message + ' — ' + a.action })))));
    }
  }

  function progressView(kind) {
    const p = kind.progress;
    if (!p) return null;
    const live = state.live.get(p.run_id) || {};
    const page = live.page !== undefined ? live.page : p.page;
    const read = live.items_read !== undefined ? live.items_read : p.items_read;
    const total = live.total !== undefined ? live.total : p.total_items;
    const rate = live.items_per_s;
    const bar = h('progress', { max: total || 100, 'data-run': p.run_id });
    if (total) bar.value = Math.min(read, total);
    else bar.removeAttribute('value'); // indeterminate until eMAG says how many
    const parts = [t('progress.page', { p: page }),
      total ? t('progress.of', { n: fmtNum(read), t: fmtNum(total) }) : t('progress.items', { n: fmtNum(read) })];
    const right = [];
    if (rate) right.push(t('progress.rate', { r: fmtNum(Math.round(rate)) }));
    if (rate && total && total > read) right.push(t('progress.eta', { t: fmtDuration(((total - read) / rate) * 1000) }));
    return h('div', { class: 'progress', 'data-progress': p.run_id },
      bar,
      h('div', { class: 'line' }, h('span', { class: 'items', text: parts.join(' · ') }), h('span', { class: 'rate', text: right.join(' · ') })),
      p.alive === false ? h('div', { class: 'line', text: t('progress.stalled') }) : null);
  }

  function nextText(n) {
    if (!n) return '—';
    switch (n.type) {
      case 'at': return fmtAgo(n.at);
      case 'due': return t('next.due');
      case 'running': return t('next.running');
      case 'paused': return t('next.paused');
      case 'when_asked': return t('next.when_asked');
      case 'waits_for': return t('next.waits_for', { id: n.run_id });
      case 'after_stopped_run': return t('next.after_stopped_run', { id: n.run_id });
      case 'never': return t('next.never');
      default: return n.type;
    }
  }

  function kindView(name, acc, k) {
    const fresh = k.freshness;
    const last = k.last_run;
    const lastOutcome = last ? outcomeOf(last) : null;
    const activeId = k.progress ? k.progress.run_id
      : (last && (lastOutcome === 'queued' || lastOutcome === 'running') ? last.id : null);
    const fact = (label, value) => h('div', null, h('span', { class: 'k', text: label }), h('span', { class: 'v' }, value));
    const freshness = fresh
      ? h('span', { class: 'fresh ' + fresh.level, title: '≤ ' + fmtDuration(fresh.warn_after_ms) },
        fresh.age_ms === null || fresh.age_ms === undefined ? t('never') : fmtDuration(fresh.age_ms))
      : h('span', { class: 'muted', text: '—' });
    const lastView = last
      ? h('span', null, fmtAgo(last.finished_at || last.started_at), ' ', h('span', { class: 'outcome ' + lastOutcome, text: t('outcome.' + lastOutcome) }))
      : t('never');
    const actions = h('div', { class: 'kind-actions' },
      state.missing.has('cancel') || !activeId ? null
        : h('button', { type: 'button', class: 'btn small danger', 'data-action': 'cancel', 'data-run': activeId, text: t('btn.cancel'),
          onclick: (e) => cancelRun(activeId, e.currentTarget) }),
      state.missing.has('sync') ? null
        : h('button', { type: 'button', class: 'btn small', 'data-action': 'sync', 'data-account': name, 'data-kind': k.kind, text: t('btn.sync'),
          disabled: acc.paused || !!activeId, onclick: (e) => syncNow(name, k.kind, e.currentTarget) }));
    return h('div', { class: 'kind', 'data-kind': k.kind },
      h('div', { class: 'kind-head' }, h('span', { class: 'kind-name', text: kindName(k.kind) }), actions),
      progressView(k),
      h('div', { class: 'kind-facts' },
        fact(t('f.last'), lastView),
        fact(t('f.next'), nextText(k.next)),
        fact(t('f.fresh'), freshness)));
  }

  function cardView(name, acc) {
    const st = acc.status || 'idle';
    const kinds = (acc.kinds || []).slice().sort((a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind));
    return h('article', { class: 'card', 'data-account': name, 'data-state': st },
      h('div', { class: 'card-head' },
        h('div', null, h('h3', { text: name }),
          h('div', { class: 'meta', text: [acc.account_type, acc.marketplace].filter(Boolean).join(' · ').toUpperCase() })),
        h('span', { class: 'pill state ' + st, 'data-state': st, text: t('state.' + st) })),
      acc.attention ? h('div', { class: 'fixbox' },
        h('strong', { text: t('attention.title') + ' · ' + t('attention.since', { t: fmtAgo(acc.attention.since) }) }),
        acc.attention.reason) : null,
      acc.paused ? h('div', { class: 'pausebox', text: t('paused.note') }) : null,
      h('div', { class: 'kinds' }, kinds.map((k) => kindView(name, acc, k))),
      h('div', { class: 'card-foot' },
        h('span', { text: acc.last_sync ? t('f.last') + ': ' + fmtAgo(acc.last_sync) : '' }),
        state.missing.has('pause') ? null
          : h('button', { type: 'button', class: 'btn small', 'data-action': acc.paused ? 'resume' : 'pause', 'data-account': name,
            text: t(acc.paused ? 'btn.resume' : 'btn.pause'), onclick: (e) => setPaused(name, !acc.paused, e.currentTarget) })));
  }

  function renderCards() {
    const el = $('#accounts');
    if (!state.status) return;
    el.replaceChildren(...accounts().map(([name, acc]) => cardView(name, acc)));
  }

  // Only the progress of one run changed: patch it in place (no re-render, no flicker).
  function patchProgress(runId) {
    const el = document.querySelector('[data-progress="' + runId + '"]');
    if (!el) { render(); return; }
    for (const [, acc] of accounts()) {
      for (const k of acc.kinds || []) {
        if (k.progress && k.progress.run_id === runId) {
          const fresh = progressView(k);
          el.replaceWith(fresh);
          return;
        }
      }
    }
  }

  function renderErrors() {
    const s = state.status;
    const logs = $('#logs');
    const list = $('#errors-list');
    logs.replaceChildren();
    list.replaceChildren();
    if (!s) return;
    if (s.logs) {
      logs.append(h('span', { class: s.logs.errors_last_hour ? 'err' : '', text: t('logs.errors', { n: s.logs.errors_last_hour }) }),
        h('span', { class: s.logs.warnings_last_hour ? 'warn' : '', text: t('logs.warnings', { n: s.logs.warnings_last_hour }) }));
    }
    const errors = s.recent_errors || [];
    if (!errors.length) { list.append(h('li', { class: 'muted none', text: t('errors.none') })); return; }
    for (const e of errors.slice(0, 10)) {
      list.append(h('li', { onclick: () => openRun(e.run_id) },
        h('div', { class: 'when', text: '#' + e.run_id + ' · ' + e.account + ' · ' + kindName(e.kind) + ' · ' + fmtAgo(e.at) }),
        h('div', { class: 'msg', text: [e.class, e.message].filter(Boolean).join(': ') }),
        (e.emag_messages || []).length ? h('div', { class: 'muted small', text: e.emag_messages.join(' · ') }) : null));
    }
  }

  function renderFooter() {
    const s = state.status;
    const el = $('#footer');
    el.replaceChildren();
    if (!s) return;
    const live = ((s.scheduler && s.scheduler.instances) || []).filter((i) => i.state === 'live').length;
    el.append(h('span', { text: t('foot.updated', { t: fmtTime(s.timestamp) }) }),
      h('span', { text: t('foot.instances', { n: live }) }),
      h('span', { text: t('foot.reclaimed', { n: s.leases_reclaimed_24h || 0 }) }));
  }

  function renderFilters() {
    const fill = (sel, values, label) => {
      const el = $(sel);
      const keep = el.value;
      el.replaceChildren(h('option', { value: '', text: t(label) }), ...values.map(([v, txt]) => h('option', { value: v, text: txt })));
      el.value = keep;
    };
    fill('#f-account', accounts().map(([n]) => [n, n]), 'filter.all_accounts');
    fill('#f-kind', KINDS.map((k) => [k, kindName(k)]), 'filter.all_kinds');
    fill('#f-outcome', OUTCOMES.map((o) => [o, t('outcome.' + o)]), 'filter.all_outcomes');
    fill('#c-account', accounts().map(([n]) => [n, n]), 'filter.all_accounts');
    fill('#c-kind', KINDS.map((k) => [k, kindName(k)]), 'filter.all_kinds');
  }

  function renderRuns() {
    const body = $('#runs-body');
    body.replaceChildren();
    const section = $('#history');
    if (!state.runs.available) {
      section.querySelector('.table-wrap').classList.add('hidden');
      $('#runs-empty').textContent = t('history.unavailable');
      $('#runs-empty').classList.remove('hidden');
      $('#runs-more').classList.add('hidden');
      return;
    }
    for (const r of state.runs.items) {
      const o = outcomeOf(r);
      const started = r.started_at || r.created_at;
      const dur = r.duration_ms !== undefined && r.duration_ms !== null ? r.duration_ms
        : (toMs(r.finished_at) && toMs(r.started_at) ? toMs(r.finished_at) - toMs(r.started_at) : null);
      const items = r.counts ? r.counts.items_read : r.items_read;
      body.append(h('tr', { 'data-run': r.id, onclick: () => openRun(r.id) },
        h('td', { text: r.id }), h('td', { text: r.account }), h('td', { text: kindName(r.kind) }),
        h('td', null, h('span', { class: 'outcome ' + o, text: t('outcome.' + o) })),
        h('td', { text: fmtAgo(started) }), h('td', { text: fmtDuration(dur) }), h('td', { class: 'num', text: fmtNum(items) })));
    }
    $('#runs-empty').textContent = t('history.empty');
    $('#runs-empty').classList.toggle('hidden', state.runs.items.length > 0);
    $('#runs-more').classList.toggle('hidden', !state.runs.next);
  }

  function renderKpis() {
    const el = $('#kpi-body');
    el.replaceChildren();
    document.querySelectorAll('.seg-btn[data-days]').forEach((b) => b.classList.toggle('active', Number(b.dataset.days) === state.kpiDays));
    if (!state.kpiAvailable) { el.append(h('p', { class: 'muted', text: t('kpi.unavailable') })); return; }
    const k = state.kpis;
    if (!k) { el.append(h('p', { class: 'muted', text: t('loading') })); return; }
    const tg = k.targets || {};
    const kinds = k.kinds || [];
    const runs = kinds.reduce((n, x) => n + (x.runs || 0), 0);
    const ok = kinds.reduce((n, x) => n + (x.succeeded || 0), 0);
    const rate = runs ? ok / runs : null;
    const fresh = kinds.length ? kinds.reduce((n, x) => n + x.freshness_share, 0) / kinds.length : null;
    const rec = kinds.map((x) => x.recovery_max_ms).filter((x) => x !== null && x !== undefined);
    const recMax = rec.length ? Math.max(...rec) : null;
    const box = (label, value, target, pass) => h('div', { class: 'kpi ' + (pass === null ? '' : pass ? 'pass' : 'fail') },
      h('div', { class: 'label', text: label }), h('div', { class: 'value', text: value }), h('div', { class: 'target', text: t('kpi.target', { t: target }) }));
    el.append(h('div', { class: 'kpi-top' },
      box(t('kpi.success'), pct(rate), '> ' + pct(tg.success_rate), rate === null ? null : rate >= tg.success_rate),
      box(t('kpi.fresh'), pct(fresh), '≥ ' + pct(tg.freshness_share), fresh === null ? null : fresh >= tg.freshness_share),
      box(t('kpi.recovery'), recMax === null ? t('kpi.none') : fmtDuration(recMax), '< ' + fmtDuration(tg.recovery_ms), recMax === null ? null : recMax <= tg.recovery_ms),
      box(t('kpi.uptime'), pct(k.uptime), '≥ ' + pct(tg.uptime), k.uptime === null || k.uptime === undefined ? null : k.uptime >= tg.uptime)));
    if (!kinds.length) return;
    const cell = (v, pass) => h('td', { class: 'num ' + (pass === null ? '' : pass ? 'pass' : 'fail'), text: v });
    el.append(h('div', { class: 'table-wrap' }, h('table', { class: 'kpi-table' },
      h('thead', null, h('tr', null, h('th', { text: t('col.account') }), h('th', { text: t('col.kind') }),
        h('th', { class: 'num', text: '✓' }), h('th', { class: 'num', text: t('kpi.fresh') }))),
      h('tbody', null, kinds.map((x) => h('tr', { class: 'static' },
        h('td', { text: x.account }), h('td', { text: kindName(x.kind) }),
        cell(pct(x.success_rate), x.success_rate === null ? null : x.success_rate >= tg.success_rate),
        cell(pct(x.freshness_share), x.freshness_share >= tg.freshness_share)))))));
  }

  function applyStatic() {
    document.documentElement.lang = state.lang;
    document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll('[data-i18n-placeholder]').forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    $('#lang').textContent = state.lang === 'ro' ? 'EN' : 'RO';
    $('#lang').setAttribute('aria-label', state.lang === 'ro' ? 'English' : 'Română');
    const via = state.session && state.session.via;
    $('#auth-state').textContent = t(via === 'loopback' ? 'auth.loopback' : via ? 'auth.set' : 'auth.none');
    setLive($('#live').dataset.state);
  }

  function render() {
    applyStatic();
    renderSummary();
    renderAlerts();
    renderCards();
    renderErrors();
    renderFooter();
    renderFilters();
    renderRuns();
    renderKpis();
    renderCharts();
    renderIncidents();
  }

  // ---- run drill-down ------------------------------------------------------------------
  async function openRun(id) {
    let run;
    try {
      run = await getJson('/api/runs/' + id);
    } catch (e) {
      run = state.runs.items.find((r) => r.id === id);
      if (!run) { toast(t('toast.failed', { m: e.message })); return; }
    }
    const cancelAt = run.cancel_requested_at;
    run = run.run || run;
    const o = outcomeOf(run);
    const body = $('#drawer-body');
    const facts = h('dl', { class: 'facts' });
    const fact = (k, v) => { if (v !== null && v !== undefined && v !== '') facts.append(h('dt', { text: k }), h('dd', null, v)); };
    fact(t('run.account'), run.account);
    fact(t('run.kind'), kindName(run.kind));
    fact(t('run.trigger'), run.trigger ? t('trigger.' + run.trigger) : null);
    fact(t('run.state'), h('span', { class: 'outcome ' + o, text: t('outcome.' + o) }));
    fact(t('run.attempt'), run.attempt);
    fact(t('run.created'), run.created_at ? fmtTime(run.created_at) : null);
    fact(t('run.started'), run.started_at ? fmtTime(run.started_at) : null);
    fact(t('run.finished'), run.finished_at ? fmtTime(run.finished_at) : null);
    const dur = run.duration_ms !== undefined ? run.duration_ms
      : (toMs(run.finished_at) && toMs(run.started_at) ? toMs(run.finished_at) - toMs(run.started_at) : null);
    fact(t('run.duration'), dur === null ? null : fmtDuration(dur));
    const cp = run.checkpoint_page !== undefined ? run.checkpoint_page : (run.checkpoint && run.checkpoint.page);
    fact(t('run.checkpoint'), cp ? t('run.checkpoint_v', { p: cp }) : null);
    fact(t('run.total'), run.total_items !== undefined && run.total_items !== null ? fmtNum(run.total_items) : null);
    fact(t('run.reclaimed'), run.reclaimed_from);
    fact(t('run.cancel_requested'), cancelAt ? fmtTime(cancelAt) : null);
    fact(t('run.note'), run.note);
    const err = run.error || {};
    const errText = [run.error_class || err.class, run.error_message || err.message].filter(Boolean).join(': ');
    fact(t('run.error'), errText || null);
    const parts = [facts];
    const msgs = run.emag_messages || err.emag_messages || [];
    if (msgs.length) parts.push(h('h3', { text: t('run.emag') }), h('ul', { class: 'msgs' }, msgs.map((m) => h('li', { text: m }))));
    const counts = run.counts || null;
    if (counts && typeof counts === 'object') {
      const dl = h('dl', { class: 'facts' });
      for (const [k, v] of Object.entries(counts)) dl.append(h('dt', { text: t('count.' + k) === 'count.' + k ? k.replace(/_/g, ' ') : t('count.' + k) }), h('dd', { class: 'num', 'data-count': k, text: fmtNum(v) }));
      parts.push(h('h3', { text: t('run.counts') }), dl);
    }
    const attempts = run.attempts;
    if (Array.isArray(attempts) && attempts.length) {
      parts.push(h('h3', { text: t('run.attempt') }), h('ul', { class: 'msgs' }, attempts.map((a) => h('li', { text: typeof a === 'object' ? Object.entries(a).map(([k, v]) => k + ': ' + v).join(' · ') : String(a) }))));
    }
    $('#drawer-title').textContent = t('run.title', { id: run.id || id });
    body.replaceChildren(...parts);
    $('#drawer').classList.remove('hidden');
    $('#drawer-close').focus();
  }

  // ---- data ----------------------------------------------------------------------------
  async function loadStatus() {
    try {
      state.status = await getJson('/api/status');
      // Progress now comes from the status; keep live rates only for runs still running.
      const running = new Set();
      for (const [, acc] of accounts()) for (const k of acc.kinds || []) if (k.progress) running.add(k.progress.run_id);
      for (const id of [...state.live.keys()]) if (!running.has(id)) state.live.delete(id);
      render();
    } catch (e) {
      setLive('down');
    }
  }
  let statusTimer = null;
  function refreshSoon() {
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { loadStatus(); loadRuns(false); loadIncidents(); }, 150);
  }

  async function loadRuns(more) {
    if (!state.runs.available) return;
    const q = new URLSearchParams({ limit: '15' });
    for (const [k, sel] of [['account', '#f-account'], ['kind', '#f-kind'], ['outcome', '#f-outcome']]) if ($(sel).value) q.set(k, $(sel).value);
    if (more && state.runs.next) q.set('after', state.runs.next);
    try {
      const page = await getJson('/api/runs?' + q);
      const items = page.items || (Array.isArray(page) ? page : []);
      state.runs.items = more ? state.runs.items.concat(items) : items;
      state.runs.next = page.next || null;
    } catch (e) {
      if (e.status === 404) state.runs.available = false;
    }
    renderRuns();
  }

  async function loadKpis() {
    try {
      state.kpis = await getJson('/api/kpis?days=' + state.kpiDays);
      state.kpiAvailable = true;
    } catch (e) {
      if (e.status === 404) state.kpiAvailable = false;
    }
    renderKpis();
  }

  // ---- charts ---------------------------------------------------------------------------
  async function loadSeries() {
    const q = new URLSearchParams({ range: state.range });
    if ($('#c-account').value) q.set('account', $('#c-account').value);
    if ($('#c-kind').value) q.set('kind', $('#c-kind').value);
    try {
      state.series = await getJson('/api/series?' + q);
      state.seriesAvailable = true;
    } catch (e) {
      state.series = null;
      if (e.status === 404 && !$('#c-account').value) state.seriesAvailable = false;
    }
    renderCharts();
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function sv(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === 'text') el.textContent = v; else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) if (c) el.append(c);
    return el;
  }

  // One bar chart: `parts(b)` gives the stacked [value, class] of a bucket, `tick(b)` an
  // optional mark above it (the max duration), `target` a dashed line.
  function barChart(key, buckets, o) {
    const W = 300, H = 96, n = buckets.length || 1, slot = W / n, gap = Math.min(2, slot * 0.2);
    let max = o.max || 0;
    if (!o.max) for (const b of buckets) max = Math.max(max, o.parts(b).reduce((x, [v]) => x + (v || 0), 0), o.tick ? o.tick(b) || 0 : 0);
    const y = (v) => H - (max > 0 ? (v / max) * (H - 4) : 0);
    const when = (b) => new Date(b.start).toLocaleString(locale(), state.range === '24h' ? { hour: '2-digit', minute: '2-digit' } : { day: '2-digit', month: 'short', hour: state.range === '7d' ? '2-digit' : undefined });
    const bars = buckets.map((b, i) => {
      let base = H;
      const g = sv('g', null, sv('title', { text: when(b) + ': ' + o.label(b) }));
      for (const [v, cls] of o.parts(b)) {
        if (!v) continue;
        const top = y(v) - (H - base);
        g.append(sv('rect', { x: (i * slot + gap / 2).toFixed(1), y: top.toFixed(1), width: Math.max(slot - gap, 0.5).toFixed(1), height: (base - top).toFixed(1), class: cls }));
        base = top;
      }
      const tk = o.tick && o.tick(b);
      if (tk) g.append(sv('line', { x1: (i * slot + gap / 2).toFixed(1), x2: ((i + 1) * slot - gap / 2).toFixed(1), y1: y(tk).toFixed(1), y2: y(tk).toFixed(1), class: 'tick' }));
      return g;
    });
    const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': t(key) },
      sv('line', { x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5, class: 'baseline' }),
      o.target !== undefined ? sv('line', { x1: 0, x2: W, y1: y(o.target).toFixed(1), y2: y(o.target).toFixed(1), class: 'target-line' }) : null,
      bars);
    const first = buckets[0], last = buckets[buckets.length - 1];
    return h('figure', { class: 'chart', 'data-chart': key.split('.')[1] },
      h('figcaption', null, h('span', { text: t(key) }), h('span', { class: 'muted', text: o.summary })),
      svg,
      h('div', { class: 'axis' }, h('span', { text: first ? when(first) : '' }), h('span', { text: last ? when(last) : '' })));
  }

  function renderCharts() {
    const el = $('#charts-body');
    document.querySelectorAll('.seg-btn[data-range]').forEach((b) => b.classList.toggle('active', b.dataset.range === state.range));
    el.replaceChildren();
    if (!state.seriesAvailable) { el.append(h('p', { class: 'muted', text: t('charts.unavailable') })); return; }
    const s = state.series;
    if (!s) { el.append(h('p', { class: 'muted', text: t('loading') })); return; }
    const bs = s.buckets || [];
    const ok = bs.reduce((n, b) => n + b.succeeded, 0), bad = bs.reduce((n, b) => n + b.failed, 0);
    const tg = s.targets || {};
    const judged = bs.filter((b) => b.freshness_share !== null);
    const fresh = judged.length ? judged.reduce((n, b) => n + b.freshness_share, 0) / judged.length : null;
    const durMax = bs.reduce((m, b) => Math.max(m, b.duration_max_ms || 0), 0);
    el.append(
      barChart('charts.runs', bs, {
        parts: (b) => [[b.succeeded, 'bar-ok'], [b.failed, 'bar-bad']],
        label: (b) => `${fmtNum(b.succeeded)} / ${fmtNum(b.failed)}`,
        summary: ok + bad ? `${pct(ok / (ok + bad))} · ${t('charts.target', { v: pct(tg.success_rate) })}` : t('charts.empty'),
      }),
      barChart('charts.duration', bs, {
        parts: (b) => [[b.duration_p50_ms, 'bar']],
        tick: (b) => b.duration_max_ms,
        label: (b) => `${fmtDuration(b.duration_p50_ms)} · max ${fmtDuration(b.duration_max_ms)}`,
        summary: durMax ? 'max ' + fmtDuration(durMax) : '—',
      }),
      barChart('charts.items', bs, {
        parts: (b) => [[b.items_read, 'bar']],
        label: (b) => fmtNum(b.items_read),
        summary: fmtNum(bs.reduce((n, b) => n + b.items_read, 0)),
      }),
      barChart('charts.freshness', bs, {
        max: 1,
        target: tg.freshness_share,
        parts: (b) => [[b.freshness_share, b.freshness_share !== null && b.freshness_share < tg.freshness_share ? 'bar-warn' : 'bar-ok']],
        label: (b) => pct(b.freshness_share),
        summary: fresh === null ? '—' : `${pct(fresh)} · ${t('charts.target', { v: pct(tg.freshness_share) })}`,
      }));
  }

  // ---- live updates --------------------------------------------------------------------
  function setLive(s) {
    const el = $('#live');
    el.dataset.state = s;
    $('#live-text').textContent = t('live.' + s);
  }

  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('open', () => setLive('live'));
    es.addEventListener('error', () => setLive(es.readyState === EventSource.CLOSED ? 'down' : 'connecting'));
    const reread = () => refreshSoon();
    // From `ready` on, every change arrives as an event: read the status now.
    for (const name of ['ready', 'resync', 'run_queued', 'run_started', 'run_finished', 'account_paused', 'account_resumed', 'attention_set', 'attention_cleared']) {
      es.addEventListener(name, () => { setLive('live'); reread(); });
    }
    es.addEventListener('run_progress', (ev) => {
      let d;
      try { d = JSON.parse(ev.data); } catch (_) { return; }
      state.live.set(d.run_id, d);
      let known = false;
      for (const [name, acc] of accounts()) {
        if (name !== d.account) continue;
        for (const k of acc.kinds || []) {
          if (k.kind === d.kind && k.progress && k.progress.run_id === d.run_id) known = true;
        }
      }
      if (known) patchProgress(d.run_id); else reread();
    });
  }

  // ---- session ---------------------------------------------------------------------------
  async function loadSession() {
    try { state.session = await getJson('/api/session'); } catch (_) { state.session = null; }
    applyStatic();
  }
  // POST /login answers 303 with the session cookie; the redirect is not followed.
  async function login(token) {
    let r;
    try {
      r = await fetch('/login', { method: 'POST', credentials: 'same-origin', redirect: 'manual', body: new URLSearchParams({ token }) });
    } catch (e) {
      toast(t('toast.failed', { m: e.message }));
      return;
    }
    $('#token').value = '';
    if (r.type === 'opaqueredirect' || r.ok) {
      await loadSession();
      showAuth(false);
    } else {
      toast(t(r.status === 403 ? 'auth.unavailable' : 'auth.wrong'));
    }
  }
  async function logout() {
    try { await fetch('/logout', { method: 'POST', credentials: 'same-origin', redirect: 'manual' }); } catch (_) { /* offline */ }
    await loadSession();
  }

  function showAuth(show) {
    $('#auth').classList.toggle('hidden', !show);
    if (show) $('#token').focus();
  }

  function init() {
    $('#lang').addEventListener('click', () => {
      state.lang = state.lang === 'ro' ? 'en' : 'ro';
      store.set('emag-sync.lang', state.lang);
      render();
    });
    $('#auth-open').addEventListener('click', () => showAuth($('#auth').classList.contains('hidden')));
    $('#auth-form').addEventListener('submit', (e) => {
      e.preventDefault();
      login($('#token').value.trim());
    });
    $('#auth-forget').addEventListener('click', logout);
    $('#filters').addEventListener('change', () => loadRuns(false));
    $('#runs-more').addEventListener('click', () => loadRuns(true));
    document.querySelectorAll('.seg-btn[data-days]').forEach((b) => b.addEventListener('click', () => { state.kpiDays = Number(b.dataset.days); loadKpis(); }));
    document.querySelectorAll('.seg-btn[data-range]').forEach((b) => b.addEventListener('click', () => { state.range = b.dataset.range; loadSeries(); }));
    $('#c-filters').addEventListener('change', loadSeries);
    $('#drawer-close').addEventListener('click', () => $('#drawer').classList.add('hidden'));
    $('#drawer').addEventListener('click', (e) => { if (e.target === e.currentTarget) $('#drawer').classList.add('hidden'); });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('#drawer').classList.add('hidden'); });
    applyStatic();
    loadSession();
    loadStatus();
    loadRuns(false);
    loadKpis();
    loadSeries();
    loadIncidents();
    connect();
    // Relative times and next syncs move on without events.
    setInterval(loadStatus, 30000);
    setInterval(loadIncidents, 30000);
    setInterval(loadKpis, 300000);
    setInterval(loadSeries, 60000);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
