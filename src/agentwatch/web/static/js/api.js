// The API client: signs in, keeps the tokens for this tab, sends them, refreshes them.
//
// The access and refresh tokens live in memory and in sessionStorage (this tab only, gone
// when it closes); every data call carries `Authorization: Bearer <access token>`. A 401
// is answered by one refresh (shared by the calls waiting on it) and one retry; when the
// refresh is refused the session is forgotten and the app shows the sign-in page (a refresh
// answered 429 or 5xx keeps it: the error is shown and a later call tries again). The login
// also sets the HttpOnly `aw_access` cookie, which the server accepts only on WebSocket
// handshakes (the live page); scripts never read it.

const STORAGE_KEY = "agentwatch.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === "" || value === false) continue;
    params.append(key, String(value));
  }
  const qs = params.toString();
  return qs ? "?" + qs : "";
}

async function errorOf(response) {
  let code = "HTTP_" + response.status;
  let message = `request failed (${response.status})`;
  try {
    const doc = await response.json();
    if (doc && doc.error) {
      code = String(doc.error.code || code);
      message = String(doc.error.message || message);
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

export function createApi({ fetchImpl = globalThis.fetch?.bind(globalThis), storage = globalThis.sessionStorage } = {}) {
  let session = null;
  let refreshing = null;
  const listeners = new Set();

  try {
    const raw = storage?.getItem(STORAGE_KEY);
    if (raw) session = JSON.parse(raw);
  } catch {
    session = null;
  }

  function save(next) {
    session = next;
    try {
      if (next) storage?.setItem(STORAGE_KEY, JSON.stringify(next));
      else storage?.removeItem(STORAGE_KEY);
    } catch {
      // storage full or blocked: the session still lives in memory
    }
    for (const fn of listeners) fn(session);
  }

  function fromTokens(doc) {
    return { access: doc.access_token, refresh: doc.refresh_token, user: doc.user || null };
  }

  async function post(path, body, token) {
    const headers = { Accept: "application/json", "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetchImpl(path, { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
  }

  async function login(email, password) {
    const response = await post("/api/v1/auth/login", { email, password });
    if (!response.ok) throw await errorOf(response);
    save(fromTokens(await response.json()));
    return session.user;
  }

  async function doRefresh() {
    const started = session;
    const token = started?.refresh;
    if (!token) return false;
    const response = await post("/api/v1/auth/refresh", { refresh_token: token });
    // signed out (or in again) meanwhile: the answer belongs to a session that is gone
    if (session !== started) return Boolean(session?.access);
    if (response.status === 429 || response.status >= 500) throw await errorOf(response); // not a refusal: retry later
    if (!response.ok) {
      save(null);
      return false;
    }
    save(fromTokens(await response.json()));
    return true;
  }

  /** One refresh at a time: calls that got a 401 together wait on the same one. */
  function refresh() {
    if (!refreshing) refreshing = doRefresh().finally(() => (refreshing = null));
    return refreshing;
  }

  async function logout() {
    const current = session;
    save(null);
    if (!current) return;
    try {
      await post("/api/v1/auth/logout", current.refresh ? { refresh_token: current.refresh } : {}, current.access);
    } catch {
      // the tokens are forgotten here whatever the server answered
    }
  }

  async function request(method, path, { query, body } = {}) {
    const url = path + queryString(query);
    const send = () => {
      const headers = { Accept: "application/json" };
      if (session?.access) headers.Authorization = "Bearer " + session.access;
      const init = { method, headers, credentials: "same-origin" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetchImpl(url, init);
    };
    let response = await send();
    if (response.status === 401 && session) {
      const renewed = await refresh();
      if (!renewed) {
        save(null);
        throw new ApiError(401, "UNAUTHORIZED", "your session has ended: sign in again");
      }
      response = await send();
      if (response.status === 401) save(null);
    }
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return null;
    return response.json();
  }

  return {
    login,
    logout,
    refresh,
    get: (path, query) => request("GET", path, { query }),
    send: (method, path, body) => request(method, path, { body }),
    signedIn: () => Boolean(session?.access),
    user: () => session?.user || null,
    onChange: (fn) => listeners.add(fn),
  };
}
