// Same-origin REST calls of the page. The session cookie (HttpOnly: script never sees it)
// goes along by itself; state-changing calls add the session's CSRF token.

/** An error answer of the gateway: its stable code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
    /** True when logging in again is the way out. */
    this.auth = status === 401 || code === "session_invalid";
  }
}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body?.code || "http_" + response.status, body?.message || text.slice(0, 200));
  }
  return body;
}

/** GET a JSON route. */
export async function getJSON(path, headers = {}) {
  return answer(await fetch(path, { headers, credentials: "same-origin", cache: "no-store" }));
}

/** POST to a JSON route with extra headers (a CSRF token, or an Authorization header once). */
export async function postJSON(path, { headers = {}, body = null } = {}) {
  const init = { method: "POST", headers: { ...headers }, credentials: "same-origin", cache: "no-store" };
  if (body !== null) {
    init.body = body;
    init.headers["Content-Type"] = "application/json";
  }
  return answer(await fetch(path, init));
}
