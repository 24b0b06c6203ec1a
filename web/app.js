// The pre-chat page: log in; a visitor opens a chat and waits, an agent watches the waiting list and joins;
// both talk; either closes; log out. Plain JavaScript, no framework, no build step, no inline script (CSP).
//
// Live updates, in order of preference (docs/push.md):
//   1. EventSource on /api/prechats/{id}/events: meta and message events; it resumes by itself with
//      Last-Event-ID; after a drop we reopen it with ?after=<last message id>, so nothing is lost or doubled.
//   2. long-poll (meta?wait= with If-None-Match, messages?after=&wait=) when there is no EventSource or the
//      stream fails again and again;
//   3. ETag polling (meta with If-None-Match) when long-polls fail too.
// The agents' waiting list is a long-poll (GET /api/prechats?status=waiting&wait= with If-None-Match), then
// ETag polling. A hidden tab keeps only its one held request (the stream, or the list's long-poll): the
// fallbacks' polling and long-polls of a chat pause until it is visible again. 401 anywhere shows the login
// form; 503 waits for Retry-After before the next try.
'use strict';

(() => {
  const WAIT_S = 30; // long-poll hold
  const POLL_MS = 2000; // ETag polling period (visible tab only)
  const STREAM_FAILURES = 3; // stream errors without an event in between before long-poll
  const LONGPOLL_FAILURES = 3; // long-poll failures in a row before ETag polling
  const BACKOFF_MAX_MS = 15000;
  const TYPING_SHOW_MS = 5000; // the other side's "typing…" goes away when no new typing event came
  const TYPING_SEND_MS = 2000; // at most one typing signal per this while the input changes

  const $ = (id) => document.getElementById(id);
  const views = ['view-login', 'view-start', 'view-queue', 'view-chat'];

  const state = {
    me: null, // {userId, role, name}
    epoch: 0, // bumped whenever what is on screen changes: stale loops and callbacks stop
    aborts: new Set(), // held requests of the current epoch
    es: null, // the EventSource of the open chat
  };

  // ---- small helpers --------------------------------------------------------------------------------------------

  class SessionEnded extends Error {}
  class Stale extends Error {}

  function show(view) {
    for (const v of views) $(v).hidden = v !== view;
  }

  function setText(id, text) {
    const el = $(id);
    el.textContent = text || '';
    el.hidden = !text;
  }

  function notice(text) {
    setText('notice', text);
  }

  function sleep(ms, epoch) {
    return new Promise((resolve, reject) => {
      setTimeout(() => (epoch === state.epoch ? resolve() : reject(new Stale())), ms);
    });
  }

  function visible(epoch) {
    if (!document.hidden) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const on = () => {
        if (epoch !== state.epoch) {
          document.removeEventListener('visibilitychange', on);
          reject(new Stale());
        } else if (!document.hidden) {
          document.removeEventListener('visibilitychange', on);
          resolve();
        }
      };
      document.addEventListener('visibilitychange', on);
    });
  }

  function retryAfterMs(res) {
    const v = Number.parseInt(res.headers.get('Retry-After') || '', 10);
    return Number.isFinite(v) && v >= 0 ? Math.min(v, 120) * 1000 : 1000;
  }

  // Everything on screen stops: streams close, held requests abort, loops see a new epoch.
  function stopLive() {
    state.epoch += 1;
    for (const a of state.aborts) a.abort();
    state.aborts.clear();
    if (state.es) {
      state.es.close();
      state.es = null;
    }
  }

  // One API call. JSON bodies (the CSRF rule: Content-Type application/json, same-origin Origin, which the
  // browser adds). 401 ends the session on screen; 503 is returned with `retryMs` from Retry-After.
  async function api(method, path, { body, etag, epoch, signal } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (etag) headers['If-None-Match'] = etag;
    const ctl = new AbortController();
    state.aborts.add(ctl);
    if (signal) signal.addEventListener('abort', () => ctl.abort(), { once: true });
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body !== undefined ? JSON.stringify(body) : undefined,
        credentials: 'same-origin',
        cache: 'no-store',
        signal: ctl.signal,
      });
    } finally {
      state.aborts.delete(ctl);
    }
    if (epoch !== undefined && epoch !== state.epoch) throw new Stale();
    let data = null;
    if (res.status !== 204 && res.status !== 304) {
      try {
        data = await res.json();
      } catch (e) {
        data = null;
      }
    }
    if (res.status === 401 && !path.startsWith('/api/auth/login')) {
      sessionEnded();
      throw new SessionEnded();
    }
    return {
      status: res.status,
      data,
      etag: res.headers.get('ETag'),
      retryMs: res.status === 503 || res.status === 429 ? retryAfterMs(res) : 0,
    };
  }

  function errorText(r, fallback) {
    if (r.status === 503) return 'The service is busy. Please try again in a moment.';
    if (r.status === 429) return 'Too many attempts. Please wait a little and try again.';
    return (r.data && r.data.message) || fallback;
  }

  // ---- session ---------------------------------------------------------------------------------------------------

  function sessionEnded() {
    const wasIn = state.me !== null;
    stopLive();
    state.me = null;
    sessionStorage.removeItem('tessera.chat');
    showLogin(wasIn ? 'Your session has ended. Please log in again.' : '');
  }

  function showLogin(message) {
    $('who').hidden = true;
    notice(message);
    setText('login-error', '');
    $('login-password').value = '';
    show('view-login');
    $('login-username').focus();
  }

  function signedIn(me) {
    state.me = me;
    const who = $('who-name');
    who.textContent = '';
    const label = document.createElement('span');
    label.className = 'who-label';
    label.textContent = 'Signed in as ';
    const strong = document.createElement('strong');
    strong.textContent = me.name || `user ${me.userId}`;
    const role = document.createElement('span');
    role.className = 'who-role';
    role.textContent = ` · ${me.role}`;
    who.append(label, strong, role);
    $('who').hidden = false;
    notice('');
    const chat = Number.parseInt(sessionStorage.getItem('tessera.chat') || '', 10);
    if (chat > 0) openChat(chat, false);
    else if (me.role === 'agent') showQueue();
    else showStart();
  }

  async function boot() {
    try {
      const r = await api('GET', '/api/auth/session');
      if (r.status === 200) {
        signedIn({ userId: String(r.data.userId), role: r.data.role, name: sessionStorage.getItem('tessera.name') });
        return;
      }
      showLogin(r.status === 503 ? 'The service is busy. Please try again in a moment.' : '');
    } catch (e) {
      if (!(e instanceof SessionEnded)) showLogin('Cannot reach the server. Please check your connection.');
    }
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    if (!username || !password) {
      setText('login-error', 'Enter your username and password.');
      (username ? $('login-password') : $('login-username')).focus();
      return;
    }
    $('login-submit').disabled = true;
    setText('login-error', '');
    try {
      const r = await api('POST', '/api/auth/login', { body: { username, password } });
      if (r.status === 200) {
        sessionStorage.setItem('tessera.name', username);
        $('login-password').value = '';
        signedIn({ userId: String(r.data.userId), role: r.data.role, name: username });
      } else {
        setText('login-error', r.status === 401 ? 'Wrong username or password.' : errorText(r, 'Could not log in.'));
        $('login-password').focus();
      }
    } catch (e) {
      setText('login-error', 'Cannot reach the server. Please check your connection.');
    } finally {
      $('login-submit').disabled = false;
    }
  });

  $('logout').addEventListener('click', async () => {
    stopLive();
    try {
      await api('POST', '/api/auth/logout');
    } catch (e) {
      // the cookie is cleared by the server; on a network error the session simply expires
    }
    state.me = null;
    sessionStorage.removeItem('tessera.chat');
    sessionStorage.removeItem('tessera.name');
    showLogin('You have logged out.');
  });

  // ---- a visitor starts a chat -----------------------------------------------------------------------------------

  function showStart() {
    stopLive();
    setText('start-error', '');
    show('view-start');
    $('start-topic').focus();
  }

  $('start-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const topic = $('start-topic').value.trim();
    if (!topic) {
      setText('start-error', 'Tell us briefly what it is about.');
      $('start-topic').focus();
      return;
    }
    $('start-submit').disabled = true;
    try {
      const r = await api('POST', '/api/prechats', { body: { topic } });
      if (r.status === 201) {
        $('start-topic').value = '';
        openChat(r.data.id, true, r.data);
      } else {
        setText('start-error', errorText(r, 'Could not start the chat.'));
      }
    } catch (e) {
      if (!(e instanceof SessionEnded)) setText('start-error', 'Cannot reach the server. Please try again.');
    } finally {
      $('start-submit').disabled = false;
    }
  });

  // ---- an agent's waiting list -----------------------------------------------------------------------------------

  function since(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (!Number.isFinite(s) || s < 60) return 'waiting less than a minute';
    const m = Math.round(s / 60);
    return m < 60 ? `waiting ${m} min` : `waiting ${Math.round(m / 60)} h`;
  }

  function renderQueue(list) {
    const ol = $('queue-list');
    ol.textContent = '';
    $('queue-summary').textContent =
      list.length === 0
        ? 'Nobody is waiting. New visitors appear here at once.'
        : `${list.length} ${list.length === 1 ? 'visitor is' : 'visitors are'} waiting.`;
    for (const p of list) {
      const li = document.createElement('li');
      li.dataset.id = String(p.id);
      const pos = document.createElement('span');
      pos.className = 'pos';
      const hint = document.createElement('span');
      hint.className = 'sr-only';
      hint.textContent = 'Position ';
      pos.append(hint, String(p.queuePosition || ''));
      const text = document.createElement('div');
      const topic = document.createElement('div');
      topic.className = 'topic';
      topic.id = `queue-topic-${p.id}`;
      topic.textContent = p.topic;
      const when = document.createElement('div');
      when.className = 'since';
      when.textContent = since(p.createdAt) + (p.leftMessage ? ` · left a message (${p.contact})` : '');
      text.append(topic, when);
      const join = document.createElement('button');
      join.type = 'button';
      join.className = 'primary';
      join.textContent = 'Join';
      join.setAttribute('aria-describedby', topic.id);
      join.addEventListener('click', () => joinChat(p.id, join));
      li.append(pos, text, join);
      ol.append(li);
    }
  }

  function showQueue() {
    stopLive();
    setText('queue-error', '');
    $('queue-summary').textContent = 'Loading…';
    $('queue-list').textContent = '';
    show('view-queue');
    $('queue-title').focus();
    watchQueue(state.epoch);
  }

  async function watchQueue(epoch) {
    let etag = null;
    let failures = 0;
    let longPoll = true;
    const live = $('queue-live');
    for (;;) {
      try {
        if (!longPoll) await visible(epoch); // ETag polling never runs in a hidden tab
        const wait = longPoll && etag ? `&wait=${WAIT_S}` : '';
        const r = await api('GET', `/api/prechats?status=waiting${wait}`, { etag, epoch });
        if (r.status === 200) {
          etag = r.etag;
          renderQueue(r.data.prechats);
        }
        if (r.status === 200 || r.status === 304) {
          failures = 0;
          live.textContent = 'Live';
          live.classList.add('on');
          setText('queue-error', '');
          if (!longPoll) await sleep(POLL_MS, epoch);
          continue;
        }
        if (r.status === 503 || r.status === 429) {
          await sleep(r.retryMs, epoch);
          continue;
        }
        setText('queue-error', errorText(r, 'The waiting list is not available.'));
        return;
      } catch (e) {
        if (e instanceof Stale || e instanceof SessionEnded || epoch !== state.epoch) return;
        failures += 1;
        live.textContent = 'Reconnecting…';
        live.classList.remove('on');
        if (longPoll && failures >= LONGPOLL_FAILURES) longPoll = false;
        try {
          await sleep(Math.min(BACKOFF_MAX_MS, 500 * 2 ** Math.min(failures, 5)), epoch);
        } catch (e2) {
          return;
        }
      }
    }
  }

  async function joinChat(id, button) {
    button.disabled = true;
    try {
      const r = await api('POST', `/api/prechats/${id}/join`);
      if (r.status === 200) {
        openChat(id, true, r.data);
        return;
      }
      setText('queue-error', r.status === 409 ? 'Another agent has joined that chat.' : errorText(r, 'Could not join.'));
      button.disabled = false;
    } catch (e) {
      if (!(e instanceof SessionEnded)) {
        setText('queue-error', 'Cannot reach the server. Please try again.');
        button.disabled = false;
      }
    }
  }

  // ---- a chat ----------------------------------------------------------------------------------------------------

  const chat = {
    id: 0,
    lastId: 0, // the newest message shown: every message is shown once, in id order
    meta: null,
    topic: '',
    left: false, // this visitor left a message in this chat (the leave form stays hidden)
    leaveOpen: false, // the leave form is open (by the visitor, or by the wait timeout's offer)
  };

  function ordinal(n) {
    const s = ['th', 'st', 'nd', 'rd'];
    const v = n % 100;
    return n + (s[(v - 20) % 10] || s[v] || s[0]);
  }

  function renderMeta(meta) {
    chat.meta = meta;
    const box = $('chat-status-box');
    const agent = state.me && state.me.role === 'agent';
    box.className = `status ${meta.status}`;
    let line = '';
    let queue = '';
    if (meta.status === 'waiting') {
      line = agent ? 'Waiting for an agent' : 'Waiting for an agent…';
      if (meta.queuePosition === 1) queue = 'You are next in the queue.';
      else if (meta.queuePosition > 1) queue = `You are ${ordinal(meta.queuePosition)} in the queue.`;
    } else if (meta.status === 'active') {
      line = agent ? 'You are talking with the visitor' : 'An agent has joined';
    } else {
      line = 'Chat closed';
    }
    $('chat-status').textContent = line;
    setText('chat-queue', queue);
    // The estimated wait (the median of recent joins' waits; null while there is no history).
    const eta = meta.estimatedWaitSeconds;
    let etaText = '';
    if (meta.status === 'waiting' && typeof eta === 'number' && eta >= 0)
      etaText = eta < 60 ? 'Estimated wait: under a minute' : `Estimated wait: about ${Math.round(eta / 60)} min`;
    setText('chat-eta', etaText);
    // A waiting visitor may leave a message at any time (no agent online, or no wish to wait): behind a
    // button, opened by itself once the wait timeout offers it (once; the pre-chat stays in the queue).
    const mayLeave = meta.status === 'waiting' && !agent && !chat.left;
    if (mayLeave && meta.offerLeaveMessage === true) chat.leaveOpen = true;
    $('leave-form').hidden = !(mayLeave && chat.leaveOpen);
    $('leave-open').hidden = !(mayLeave && !chat.leaveOpen);
    const closed = meta.status === 'closed';
    $('chat-form').hidden = closed;
    $('chat-close').hidden = closed;
    $('chat-closed').hidden = !closed;
    if (closed) {
      $('chat-again').textContent = agent ? 'Back to the waiting list' : 'Start a new chat';
      sessionStorage.removeItem('tessera.chat');
    }
  }

  function addMessage(m) {
    if (!(m.id > chat.lastId)) return; // a resend after a resume: already shown
    chat.lastId = m.id;
    const mine = state.me && String(m.senderId) === state.me.userId;
    const li = document.createElement('li');
    li.className = `msg ${mine ? 'mine' : 'theirs'}`;
    li.dataset.id = String(m.id);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = mine ? 'You' : m.sender === 'agent' ? 'Agent' : 'Visitor';
    const at = new Date(m.createdAt);
    if (!Number.isNaN(at.getTime())) {
      const time = document.createElement('time');
      time.dateTime = m.createdAt;
      time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      who.append(' · ', time);
    }
    const bubble = document.createElement('span');
    bubble.className = 'bubble';
    bubble.textContent = m.body; // text, never markup
    li.append(who, bubble);
    const ol = $('chat-messages');
    ol.append(li);
    ol.scrollTop = ol.scrollHeight;
    ol.classList.toggle('scrolled', ol.scrollTop > 0);
  }

  // The line under the conversation: the connection's state. Typing indicators and read receipts (to come)
  // belong next to it.
  function conn(text, bad) {
    const el = $('chat-conn');
    el.textContent = text;
    el.classList.toggle('bad', !!bad);
    el.classList.toggle('up', !!text && !bad);
    document.body.dataset.live = bad ? 'down' : text ? 'up' : '';
  }

  function openChat(id, fresh, prechat) {
    stopLive();
    chat.id = id;
    chat.lastId = 0;
    chat.meta = null;
    chat.left = false;
    chat.leaveOpen = false;
    sessionStorage.setItem('tessera.chat', String(id));
    $('chat-messages').textContent = '';
    setText('chat-error', '');
    $('chat-label').textContent = state.me.role === 'agent' ? 'Chat with a visitor' : 'Your chat';
    $('chat-topic').textContent = prechat ? prechat.topic : '';
    if (prechat) renderMeta(prechat);
    else {
      $('chat-status').textContent = 'Connecting…';
      setText('chat-queue', '');
    }
    show('view-chat');
    hideTyping();
    const epoch = state.epoch;
    if (!prechat) {
      api('GET', `/api/prechats/${id}`, { epoch })
        .then((r) => {
          if (r.status === 200) $('chat-topic').textContent = r.data.topic;
          else if (r.status === 404) leaveChat('That chat is no longer available.');
        })
        .catch(() => {});
    }
    if (fresh) $('chat-input').focus();
    else $('chat-topic').focus();
    live(epoch);
  }

  function leaveChat(message) {
    sessionStorage.removeItem('tessera.chat');
    if (state.me.role === 'agent') showQueue();
    else showStart();
    notice(message);
  }

  function onMeta(meta, epoch) {
    if (epoch !== state.epoch) return;
    renderMeta(meta);
  }

  // The chat's live channel: the stream first, then long-poll, then ETag polling.
  function live(epoch) {
    if (typeof window.EventSource === 'function') stream(epoch, 0);
    else longPoll(epoch);
  }

  // Opens the chat's stream from the last message shown; never a second one (the error path and the 'online'
  // handler may both ask).
  function stream(epoch, failures) {
    if (epoch !== state.epoch || state.es) return;
    const es = new EventSource(`/api/prechats/${chat.id}/events?after=${chat.lastId}`);
    state.es = es;
    let errors = failures;
    document.body.dataset.transport = 'stream';
    es.addEventListener('open', () => conn('Live', false));
    es.addEventListener('meta', (ev) => {
      errors = 0;
      const meta = JSON.parse(ev.data);
      onMeta(meta, epoch);
      if (meta.status === 'closed' && meta.lastMessageId <= chat.lastId) {
        es.close(); // nothing more will come
        conn('', false);
      }
    });
    es.addEventListener('typing', (ev) => {
      if (epoch !== state.epoch) return;
      const t = JSON.parse(ev.data);
      if (t.from !== state.me.role) showTyping(t.from);
    });
    es.addEventListener('message', (ev) => {
      errors = 0;
      if (epoch !== state.epoch) return;
      const m = JSON.parse(ev.data);
      if (m.sender !== state.me.role) hideTyping(); // what they typed has arrived
      addMessage(m);
      if (chat.meta && chat.meta.status === 'closed' && chat.id && chat.lastId >= chat.meta.lastMessageId) {
        es.close();
        conn('', false);
      }
    });
    es.addEventListener('error', async () => {
      if (epoch !== state.epoch || state.es !== es) return;
      if (!navigator.onLine) return; // the 'offline' handler has it
      errors += 1;
      conn('Connection lost. Reconnecting…', true);
      if (es.readyState !== EventSource.CLOSED && errors < STREAM_FAILURES) return; // it retries by itself
      // Refused (an HTTP error), or failing again and again: find out why before going on.
      es.close();
      state.es = null;
      try {
        const r = await api('GET', `/api/prechats/${chat.id}/meta`, { epoch }); // 401 shows the login form
        if (r.status === 404) return leaveChat('That chat is no longer available.');
        if (r.status === 200) onMeta(r.data, epoch);
        if (r.status === 200 && r.data.status === 'closed' && r.data.lastMessageId <= chat.lastId) return conn('', false);
        if (r.status === 503 || r.status === 429) await sleep(r.retryMs, epoch);
        if (state.es) return; // reopened meanwhile (back online)
        if (errors >= STREAM_FAILURES && r.status === 200) return longPoll(epoch); // the server answers; the stream does not
        stream(epoch, errors);
      } catch (e) {
        if (e instanceof Stale || e instanceof SessionEnded) return;
        try {
          await sleep(Math.min(BACKOFF_MAX_MS, 1000 * 2 ** Math.min(errors, 4)), epoch);
        } catch (e2) {
          return;
        }
        if (state.es) return;
        if (errors >= STREAM_FAILURES) longPoll(epoch);
        else stream(epoch, errors);
      }
    });
  }

  // A network drop the browser knows of: the stream closes now and reopens from the last message on return.
  window.addEventListener('offline', () => {
    if (!state.es) return;
    state.es.close();
    state.es = null;
    conn('You are offline. Messages will appear when the connection is back.', true);
  });
  window.addEventListener('online', () => {
    if (state.me && !$('view-chat').hidden && !state.es && document.body.dataset.transport === 'stream') {
      if (chat.meta && chat.meta.status === 'closed') return;
      conn('Reconnecting…', true);
      stream(state.epoch, 0);
    }
  });

  async function longPoll(epoch) {
    document.body.dataset.transport = 'longpoll';
    conn('Live', false);
    let failures = 0;
    let etag = null;
    const stop = new AbortController(); // giving up: the other loop's held request ends too
    const fail = async () => {
      failures += 1;
      conn('Connection lost. Reconnecting…', true);
      if (failures >= LONGPOLL_FAILURES) return stop.abort();
      await sleep(Math.min(BACKOFF_MAX_MS, 500 * 2 ** Math.min(failures, 5)), epoch);
    };
    // The meta and the messages wait side by side; the chat's end stops both.
    const metaLoop = async () => {
      for (;;) {
        await visible(epoch);
        if (failures >= LONGPOLL_FAILURES) return;
        try {
          const wait = etag ? `?wait=${WAIT_S}` : '';
          const r = await api('GET', `/api/prechats/${chat.id}/meta${wait}`, { etag, epoch, signal: stop.signal });
          if (r.status === 200) {
            etag = r.etag;
            onMeta(r.data, epoch);
            if (r.data.status === 'closed') return;
          } else if (r.status === 404) {
            return leaveChat('That chat is no longer available.');
          } else if (r.status === 503 || r.status === 429) {
            await sleep(r.retryMs, epoch);
          } else if (r.status !== 304) {
            await fail();
            continue;
          }
          failures = 0;
          conn('Live', false);
        } catch (e) {
          if (e instanceof Stale || e instanceof SessionEnded) throw e;
          await fail();
        }
      }
    };
    const messageLoop = async () => {
      for (;;) {
        await visible(epoch);
        if (failures >= LONGPOLL_FAILURES) return;
        if (chat.meta && chat.meta.status === 'closed' && chat.lastId >= chat.meta.lastMessageId) return;
        try {
          const r = await api('GET', `/api/prechats/${chat.id}/messages?after=${chat.lastId}&wait=${WAIT_S}`, {
            epoch,
            signal: stop.signal,
          });
          if (r.status === 200) {
            for (const m of r.data.messages) addMessage(m);
            failures = 0;
          } else if (r.status === 503 || r.status === 429) {
            await sleep(r.retryMs, epoch);
          } else if (r.status === 404) {
            return;
          } else {
            await fail();
          }
        } catch (e) {
          if (e instanceof Stale || e instanceof SessionEnded) throw e;
          await fail();
        }
      }
    };
    try {
      await Promise.all([metaLoop(), messageLoop()]);
    } catch (e) {
      return;
    }
    if (epoch === state.epoch && failures >= LONGPOLL_FAILURES) etagPoll(epoch);
    else if (epoch === state.epoch) conn('', false);
  }

  async function etagPoll(epoch) {
    document.body.dataset.transport = 'poll';
    let etag = null;
    let failures = 0;
    for (;;) {
      try {
        await visible(epoch); // a hidden tab polls nothing
        const r = await api('GET', `/api/prechats/${chat.id}/meta`, { etag, epoch });
        if (r.status === 200) {
          etag = r.etag;
          onMeta(r.data, epoch);
          if (r.data.lastMessageId > chat.lastId) {
            const m = await api('GET', `/api/prechats/${chat.id}/messages?after=${chat.lastId}`, { epoch });
            if (m.status === 200) for (const x of m.data.messages) addMessage(x);
          }
          if (r.data.status === 'closed' && chat.lastId >= r.data.lastMessageId) return conn('', false);
        } else if (r.status === 404) {
          return leaveChat('That chat is no longer available.');
        }
        if (r.status === 503 || r.status === 429) {
          await sleep(r.retryMs, epoch);
          continue;
        }
        failures = r.status === 200 || r.status === 304 ? 0 : failures + 1;
        conn(failures === 0 ? 'Live (checking every few seconds)' : 'Connection lost. Retrying…', failures > 0);
        await sleep(failures === 0 ? POLL_MS : Math.min(BACKOFF_MAX_MS, POLL_MS * 2 ** Math.min(failures, 3)), epoch);
      } catch (e) {
        if (e instanceof Stale || e instanceof SessionEnded) return;
        failures += 1;
        conn('Connection lost. Retrying…', true);
        try {
          await sleep(Math.min(BACKOFF_MAX_MS, POLL_MS * 2 ** Math.min(failures, 3)), epoch);
        } catch (e2) {
          return;
        }
      }
    }
  }

  // Typing: shown for TYPING_SHOW_MS after the other side's last signal; ours is sent at most every
  // TYPING_SEND_MS while the input changes (the server keeps nothing of it: it is an event on the stream).
  let typingTimer = null;
  let typingSent = 0;

  function hideTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    setText('chat-typing', '');
  }

  function showTyping(from) {
    setText('chat-typing', from === 'agent' ? 'The agent is typing…' : 'The visitor is typing…');
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  $('chat-input').addEventListener('input', () => {
    const now = Date.now();
    if (!chat.id || !$('chat-input').value || now - typingSent < TYPING_SEND_MS) return;
    typingSent = now;
    api('POST', `/api/prechats/${chat.id}/typing`, { epoch: state.epoch }).catch(() => {}); // best effort
  });

  $('chat-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('chat-input');
    const body = input.value.trim();
    if (!body) return;
    const epoch = state.epoch;
    $('chat-send').disabled = true;
    setText('chat-error', '');
    try {
      const r = await api('POST', `/api/prechats/${chat.id}/messages`, { body: { body }, epoch });
      if (r.status === 201) {
        input.value = ''; // the live channel shows it, in order with everyone else's
        typingSent = 0; // the next message's first keystroke signals at once
      } else if (r.status === 409) {
        setText('chat-error', 'This chat is closed.');
      } else {
        setText('chat-error', errorText(r, 'Could not send the message.'));
      }
    } catch (e) {
      if (!(e instanceof SessionEnded) && !(e instanceof Stale)) {
        setText('chat-error', 'Not sent: cannot reach the server. Your message is kept; press Send to try again.');
      }
    } finally {
      $('chat-send').disabled = false;
      if (epoch === state.epoch) input.focus();
    }
  });

  $('leave-open').addEventListener('click', () => {
    chat.leaveOpen = true;
    $('leave-open').hidden = true;
    $('leave-form').hidden = false;
    $('leave-message').focus();
  });

  $('leave-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const message = $('leave-message').value.trim();
    const contact = $('leave-contact').value.trim();
    if (!message || !contact) {
      setText('leave-error', 'Please write a message and how to reach you.');
      return;
    }
    const epoch = state.epoch;
    $('leave-send').disabled = true;
    setText('leave-error', '');
    try {
      const r = await api('POST', `/api/prechats/${chat.id}/leave`, { body: { message, contact }, epoch });
      if (r.status === 200 || r.status === 409) {
        chat.left = true; // 409: left already, or an agent joined meanwhile
        $('leave-form').hidden = true;
        $('leave-open').hidden = true;
      } else {
        setText('leave-error', errorText(r, 'Could not leave the message.'));
      }
    } catch (e) {
      if (!(e instanceof SessionEnded) && !(e instanceof Stale)) {
        setText('leave-error', 'Not sent: cannot reach the server. Press the button to try again.');
      }
    } finally {
      $('leave-send').disabled = false;
    }
  });

  $('chat-close').addEventListener('click', async () => {
    const button = $('chat-close');
    const epoch = state.epoch;
    button.disabled = true;
    try {
      const r = await api('POST', `/api/prechats/${chat.id}/close`, { epoch });
      if (r.status === 200 || r.status === 409) {
        if (r.status === 200) onMeta(r.data, epoch);
        $('chat-again').focus();
      } else {
        setText('chat-error', errorText(r, 'Could not close the chat.'));
      }
    } catch (e) {
      if (!(e instanceof SessionEnded) && !(e instanceof Stale)) setText('chat-error', 'Cannot reach the server.');
    } finally {
      button.disabled = false;
    }
  });

  $('chat-again').addEventListener('click', () => {
    sessionStorage.removeItem('tessera.chat');
    if (state.me.role === 'agent') showQueue();
    else showStart();
  });

  // A conversation scrolled past its first message fades in at the top.
  $('chat-messages').addEventListener('scroll', (ev) => {
    ev.target.classList.toggle('scrolled', ev.target.scrollTop > 0);
  });

  // A list that was at its end stays there when the screen turns or shrinks.
  window.addEventListener('resize', () => {
    const ol = $('chat-messages');
    ol.scrollTop = ol.scrollHeight;
  });

  boot();
})();
