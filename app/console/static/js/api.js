// The API, as the console calls it: relative URLs (so a path prefix such as /cxr/ just works), the key from
// sessionStorage in the X-API-Key header (never in a URL), and the API's own `detail` text on every error.

const KEY = "cxr.apiKey";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY) || "",
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

export const url = (path) => new URL(path, document.baseURI).toString();

function headers(extra = {}) {
  const h = { ...extra };
  const key = apiKey.get();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function failure(response) {
  let body = null;
  let detail = `${response.status} ${response.statusText}`;
  try {
    body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(response.status, detail, body);
}

/** fetch + the key; resolves to the Response when ok, throws ApiError with the API's detail otherwise. */
export async function call(path, { method = "GET", body, json, accept } = {}) {
  const extra = {};
  if (json !== undefined) extra["Content-Type"] = "application/json";
  if (accept) extra["Accept"] = accept;
  let response;
  try {
    response = await fetch(url(path), { method, headers: headers(extra), body: json !== undefined ? JSON.stringify(json) : body });
  } catch (err) {
    throw new ApiError(0, `the server could not be reached (${err.message})`, null);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export const getJSON = async (path) => (await call(path)).json();
export const sendJSON = async (path, method, json) => (await call(path, { method, json })).json();

/** A file as the API's multipart field ``file``: the API reads the format from the bytes, whatever its type. */
export function fileForm(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return form;
}

/** A multipart upload with progress (fetch has no upload progress): resolves to the parsed JSON answer. */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path));
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep null */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, (body && body.detail) || `${xhr.status} ${xhr.statusText}`, body));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload failed: the server could not be reached", null)));
    xhr.send(fileForm(file));
  });
}
