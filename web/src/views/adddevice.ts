// "Add device": the agent and the group's settings file, and a Linux command doing both.

import type { Json } from "../control";
import { dialog, h, notice, toast } from "../dom";

/** Single-quotes text for a POSIX shell. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function installCommand(origin: string, groupId: string): string {
  const agent = `${origin}/agents/ironmesh-agent`;
  const msh = `${origin}/meshsettings?id=${encodeURIComponent(groupId)}`;
  return [
    `curl -fsSk ${shellQuote(agent)} -o ironmesh-agent`,
    `curl -fsSk ${shellQuote(msh)} -o ironmesh-agent.msh`,
    `chmod +x ironmesh-agent`,
    `./ironmesh-agent --msh ironmesh-agent.msh`,
  ].join(" && \\\n  ");
}

export function addDeviceDialog(group: Json): void {
  const origin = location.origin;
  const cmd = installCommand(origin, group._id);
  const code = h("pre", { class: "code", id: "install-command" }, cmd);
  const copy = h("button", { type: "button", class: "small" }, "Copy command");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(cmd);
      toast("ok", "Install command copied.");
    } catch {
      toast("error", "The browser refused the clipboard: select the command and copy it by hand.");
    }
  });
  const done = h("button", { type: "button" }, "Done");
  const dlg = dialog(
    `Add a device to ${group.name}`,
    [
      h("p", {}, "Run this on the Linux device, as the user the agent should run as (root for full access):"),
      code,
      copy,
      h("p", {}, "Or download the two files and start the agent with ", h("code", {}, "--msh"), ":"),
      h(
        "ul",
        { class: "downloads" },
        h("li", {}, h("a", { href: "/agents/ironmesh-agent", download: "ironmesh-agent", id: "agent-download" }, "ironmesh agent (Linux, this server's architecture)")),
        h("li", {}, h("a", { href: `/meshsettings?id=${encodeURIComponent(group._id)}`, download: "ironmesh-agent.msh", id: "msh-download" }, `Settings for ${group.name} (.msh)`)),
      ),
      h("p", { class: "muted" }, "The settings file pins this server's identity; the device appears here as soon as the agent connects."),
    ],
    [done],
  );
  done.addEventListener("click", () => dlg.close());
  // Say so up front when this server has no agent binary to hand out.
  fetch("/agents/ironmesh-agent", { method: "HEAD" })
    .then((r) => {
      if (!r.ok) {
        code.before(
          notice(
            "error",
            "This server has no agent binary to hand out yet: on the server, build it with " +
              "`cargo build --release -p ironmesh-agent` (scripts/serve does), then try again.",
          ),
        );
      }
    })
    .catch(() => {});
}
