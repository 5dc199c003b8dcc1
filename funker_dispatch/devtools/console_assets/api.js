// The one JSON API the page talks to: every call carries the page's token, same origin.

const token = document.querySelector('meta[name="console-token"]').content;

export class ApiError extends Error {
  constructor(status, error, message) {
    super(`${error}: ${message}`);
    this.status = status;
    this.error = error;
  }
}

export async function call(path, body) {
  const init = { headers: { "X-Console-Token": token }, credentials: "same-origin" };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/console/api/${path}`, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? "http",
      data?.message ?? response.statusText);
  }
  return data;
}

// One line under the tabs saying what went wrong with the console itself.
export function problem(error) {
  const line = document.getElementById("problem");
  if (!error) {
    line.hidden = true;
    return;
  }
  line.textContent = error instanceof ApiError ? `Console: ${error.message}` : String(error.message ?? error);
  line.hidden = false;
}
