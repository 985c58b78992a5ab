// The console's entry: page frame, navigation and the hash router.

import "./nonce";
import "./style.css";
import { App } from "./app";
import { errorText, Json } from "./control";
import { h, notice, replace } from "./dom";
import { devicesView } from "./views/devices";
import { deviceView } from "./views/device";
import { usersView, groupsView } from "./views/admin";
import { eventsView } from "./views/events";
import { accountView, enrolmentView } from "./views/account";

export type Cleanup = () => void;
export type View = (app: App, main: HTMLElement, params: string[]) => Cleanup | void;

const routes: [RegExp, View][] = [
  [/^#?\/?(?:devices)?$/, devicesView],
  [/^#\/device\/([^/]+)(?:\/([a-z]+))?$/, deviceView],
  [/^#\/admin\/users$/, usersView],
  [/^#\/admin\/groups$/, groupsView],
  [/^#\/events(?:\?.*)?$/, eventsView],
  [/^#\/account$/, accountView],
];

function frame(app: App): { main: HTMLElement; nav: HTMLElement } {
  const status = h("span", { id: "link-state", class: "linkstate up", title: "Connection to the server" }, "connected");
  app.ctl.onState((up) => {
    status.className = `linkstate ${up ? "up" : "down"}`;
    status.textContent = up ? "connected" : "reconnecting…";
  });
  const nav = h("nav", { class: "nav", "aria-label": "Main" });
  const who = h("a", { id: "whoami", class: "whoami", href: "#/account", title: "Your account: password and second factors" });
  const signOut = h(
    "form",
    { method: "post", action: "/logout", class: "signout" },
    h("button", { type: "submit", id: "sign-out", class: "ghost" }, "Sign out"),
  );
  const header = h("header", { class: "top" }, h("a", { href: "#/devices", class: "brand" }, "ironmesh"), nav, h("div", { class: "top-right" }, status, who, signOut));
  const main = h("main", { id: "view" });
  const broadcasts = h("div", { id: "broadcasts", class: "broadcasts", "aria-live": "polite" });
  replace(document.getElementById("app")!, header, h("div", { id: "toast" }), broadcasts, main);
  app.onNotification((msg) => broadcasts.prepend(broadcastNotice(msg)));
  // Re-rendered on every change of the app's lists (live events arrive all the time): the
  // links are rebuilt only when their set changes, so a click is never lost to a link
  // replaced under the pointer; otherwise only which one is active is updated.
  let linkSet = "";
  const renderNav = () => {
    nav.hidden = app.enrolling;
    const here = location.hash || "#/devices";
    const links: [string, string][] = [["#/devices", "Devices"]];
    if (app.canManageUsers()) links.push(["#/admin/users", "Users"]);
    links.push(["#/admin/groups", "Device groups"]);
    links.push(["#/events", "Events"]);
    const set = links.map(([href]) => href).join(" ");
    if (set !== linkSet) {
      linkSet = set;
      replace(nav, links.map(([href, label]) => h("a", { href }, label)));
    }
    for (const a of nav.querySelectorAll("a")) {
      const href = a.getAttribute("href") ?? "";
      const active = here.startsWith(href) || (href === "#/devices" && here.startsWith("#/device/"));
      a.className = active ? "active" : "";
    }
    who.textContent = app.me.name ?? "";
  };
  app.onChange(renderNav);
  window.addEventListener("hashchange", renderNav);
  renderNav();
  return { main, nav };
}

/** A message a user manager broadcast: shown until dismissed. Sender and text are the
 *  server's strings, put into text nodes only. */
function broadcastNotice(msg: Json): HTMLElement {
  const dismiss = h("button", { type: "button", class: "ghost small broadcast-dismiss", "aria-label": "Dismiss" }, "✕");
  const box = h(
    "div",
    { class: "notice info broadcast", role: "status", "data-broadcast": String(msg.id ?? "") },
    h("span", { class: "broadcast-text" }, h("strong", { class: "broadcast-from" }, String(msg.title ?? "Message")), h("span", { class: "broadcast-message" }, String(msg.value ?? ""))),
    dismiss,
  );
  dismiss.addEventListener("click", () => box.remove());
  return box;
}

async function boot(): Promise<void> {
  const app = new App();
  const { main } = frame(app);
  let cleanup: Cleanup | void;
  const route = () => {
    if (cleanup) cleanup();
    cleanup = undefined;
    const hash = location.hash || "#/devices";
    for (const [re, view] of routes) {
      const m = hash.match(re);
      if (m) {
        main.replaceChildren();
        try {
          cleanup = view(app, main, m.slice(1).map((p) => (p ? decodeURIComponent(p) : p)));
        } catch (e) {
          replace(main, notice("error", `This page failed to load: ${errorText(e)}`));
        }
        return;
      }
    }
    replace(main, h("h1", {}, "Not found"), h("p", {}, "There is no page here. ", h("a", { href: "#/devices" }, "Back to the devices.")));
  };
  try {
    await app.greeted();
  } catch (e) {
    replace(main, notice("error", `Could not reach the server: ${errorText(e)}. Reload the page to try again.`));
    return;
  }
  if (app.enrolling) {
    // The site requires a second factor: the account page alone, until one is added.
    enrolmentView(app, main);
    return;
  }
  window.addEventListener("hashchange", route);
  try {
    await app.start();
  } catch (e) {
    replace(main, notice("error", `Could not load your devices: ${errorText(e)}. Reload the page to try again.`));
    return;
  }
  route();
}

boot();
