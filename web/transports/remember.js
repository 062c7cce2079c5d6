// Where the Automatic pane (auto.js) keeps the transport that worked, for
// the tab's session (sessionStorage): a reload starts there. With storage
// disabled nothing is kept, and every load starts from the top.

/** The key it is kept under. */
const REMEMBER_KEY = 'chat-transports.auto';

/** The transport that worked earlier in this tab, or null. */
export function recall() {
  try {
    return sessionStorage.getItem(REMEMBER_KEY);
  } catch {
    return null; // storage disabled
  }
}

/** Keeps `name` as the transport that works. */
export function remember(name) {
  try {
    sessionStorage.setItem(REMEMBER_KEY, name);
  } catch {
    // Storage disabled: the next load starts from the top.
  }
}
