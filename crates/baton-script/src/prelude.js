// Installs the workflow API. Runs before the script, with the host calls in `host`;
// everything it needs from the language is captured first, so a script that replaces
// built-ins cannot change how the API behaves, and what it installs is frozen.
(function (host, config) {
  'use strict';
  const parse = JSON.parse;
  const stringify = JSON.stringify;
  const all = Promise.all.bind(Promise);
  const isArray = Array.isArray;
  const from = Array.from;
  const map = Function.prototype.call.bind(Array.prototype.map);
  const join = Function.prototype.call.bind(Array.prototype.join);
  const freeze = Object.freeze;
  const define = Object.defineProperty;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const Str = String;
  const agentRaw = host.agent, itemsRaw = host.items, phaseRaw = host.phase, logRaw = host.log,
    spentRaw = host.spent, workflowRaw = host.workflow;
  let currentPhase = null;

  function unwrap(text) {
    const r = parse(text);
    if (r.error !== undefined) throw new ErrorCtor(r.error);
    return r.value;
  }

  async function agent(prompt, opts) {
    if (typeof prompt !== 'string') throw new TypeErrorCtor('agent(prompt, opts): prompt must be a string');
    const o = opts === undefined ? {} : opts;
    if (o === null || typeof o !== 'object' || isArray(o)) throw new TypeErrorCtor('agent(prompt, opts): opts must be an object');
    const phase = o.phase !== undefined ? Str(o.phase) : currentPhase;
    return unwrap(await agentRaw(stringify({ prompt, opts: o, phase })));
  }

  // Items are functions (called) or promises, such as agent(…) calls already made
  // (awaited); anything else is a TypeError naming its index, before anything runs.
  async function parallel(thunks) {
    if (!isArray(thunks)) throw new TypeErrorCtor('parallel(thunks) takes an array of functions');
    for (let i = 0; i < thunks.length; i++) {
      const t = thunks[i];
      const thenable = t !== null && typeof t === 'object' && typeof t.then === 'function';
      if (typeof t !== 'function' && !thenable) {
        throw new TypeErrorCtor('parallel(thunks): item ' + i + ' is ' + (t === null ? 'null' : typeof t) +
          ', not a function or a promise; write () => agent(…)');
      }
    }
    unwrap(itemsRaw(thunks.length));
    return all(map(thunks, async (t) => {
      try { return await (typeof t === 'function' ? t() : t); } catch (e) { return null; }
    }));
  }

  async function pipeline(items, ...stages) {
    const list = from(items);
    unwrap(itemsRaw(list.length));
    for (const s of stages) {
      if (typeof s !== 'function') throw new TypeErrorCtor('pipeline(items, ...stages): every stage must be a function');
    }
    return all(map(list, async (item, index) => {
      let prev = item;
      for (const stage of stages) {
        try { prev = await stage(prev, item, index); } catch (e) { return null; }
      }
      return prev;
    }));
  }

  function phase(title) {
    currentPhase = Str(title);
    unwrap(phaseRaw(currentPhase));
  }

  // Like console.log: its arguments joined by spaces, objects as JSON.
  function log(...parts) {
    const text = map(parts, (p) => {
      if (typeof p === 'string') return p;
      if (p === undefined || typeof p === 'function' || typeof p === 'symbol') return Str(p);
      try { const j = stringify(p); return j === undefined ? Str(p) : j; } catch (e) { return Str(p); }
    });
    unwrap(logRaw(join(text, ' ')));
  }

  async function workflow(name, args) {
    return unwrap(await workflowRaw(stringify({ name: Str(name), args: args === undefined ? null : args })));
  }

  const total = config.budgetTotal;
  const budget = {
    total,
    spent() { return spentRaw(); },
    remaining() { return total === null ? Infinity : Math.max(0, total - spentRaw()); },
  };

  // Resume replays the script from the top, so it must make the same calls again:
  // sources of time and randomness are refused with the reason.
  const RealDate = Date;
  const why = ' is not available in workflow scripts: it would break resume';
  function GuardedDate(...a) {
    if (new.target === undefined) throw new ErrorCtor('Date()' + why);
    if (a.length === 0) throw new ErrorCtor('new Date() without arguments' + why + '; pass a timestamp');
    return new RealDate(...a);
  }
  const nowThrows = function now() { throw new ErrorCtor('Date.now()' + why); };
  GuardedDate.prototype = RealDate.prototype;
  GuardedDate.UTC = RealDate.UTC;
  GuardedDate.parse = RealDate.parse;
  define(GuardedDate, 'now', { value: nowThrows, writable: false, configurable: false });
  define(RealDate, 'now', { value: nowThrows, writable: false, configurable: false });
  define(RealDate.prototype, 'constructor', { value: GuardedDate, writable: false, configurable: false });
  define(globalThis, 'Date', { value: freeze(GuardedDate), writable: false, configurable: false });
  define(Math, 'random', {
    value: function random() { throw new ErrorCtor('Math.random()' + why); },
    writable: false,
    configurable: false,
  });

  const api = { agent, parallel, pipeline, phase, log, workflow, budget };
  for (const name of Object.keys(api)) {
    define(globalThis, name, { value: freeze(api[name]), writable: false, configurable: false, enumerable: false });
  }
})
