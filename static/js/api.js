// api.js - the daemon's JSON API.  Errors become ApiError with the
// status, message, code and the field named in error.param (422/409).
// /v1 and /admin need an API key once keys exist; the dashboard sends the
// one saved in this browser tab (Settings page), if any.

const KEY_STORAGE = 'mlxm.apiKey';

class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

export function savedKey() {
  return sessionStorage.getItem(KEY_STORAGE) || '';
}

export function saveKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function headersFor(path, extra = {}) {
  const headers = { ...extra };
  const key = savedKey();
  if (key && /^\/(v1|admin)\//.test(path)) headers.Authorization = `Bearer ${key}`;
  return headers;
}

// Turns a non-2xx response into an ApiError (OpenAI, Anthropic or nginx shape).
export async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const e = body && body.error;
  const message = (e && e.message) || `${res.status} ${res.statusText || 'error'}`;
  const hint = res.status === 401 ? ' (save an API key on the Settings page)' : '';
  return new ApiError(res.status, message + hint, e && (e.code || e.type), e && e.param);
}

export async function api(method, path, body, opts = {}) {
  const init = { method, headers: headersFor(path), signal: opts.signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The server is not reachable');
  }
  if (!res.ok) throw await errorFrom(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);
export const put = (path, body, opts) => api('PUT', path, body, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);
