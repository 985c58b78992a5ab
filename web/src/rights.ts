// Rights bits with MeshCentral's values, and the labels the console shows for them. Only the
// bits the server enforces are offered; bits a member or user holds beyond these (set by
// another tool) are kept as they are when the console saves.

export const FULL = 0xffffffff;

/** Group rights the server enforces: [bit, label, what it does]. */
export const GROUP_RIGHTS: [number, string, string][] = [
  [1, "Edit group", "Rename the group and change its settings, such as session recording; move devices in and out (with Manage devices)."],
  [2, "Manage members", "Add and remove members and set their rights (never beyond their own)."],
  [4, "Manage devices", "Rename, describe and tag the group's devices, move them to other groups (with Edit group), approve its Wi-Fi gateways."],
  [8, "Remote control", "Open terminal, file and desktop sessions with the group's devices."],
  [16, "Agent console", "Use the agents' own console (needs remote control too)."],
  [64, "Wake devices", "Wake sleeping devices with Wake-on-LAN sent by the group's other agents."],
  [256, "Desktop view only", "Sees remote desktops but sends no keyboard or mouse input."],
  [512, "No terminal", "Takes terminal sessions away, even with remote control."],
  [1024, "No files", "Takes file access away, even with remote control."],
  [8192, "Only own events", "Sees only the group's events this member caused."],
  [16384, "Chat and notify", "Show notifications and message boxes to the devices' users."],
  [32768, "Remove devices", "Remove devices from the server (a connected ironmesh-agent uninstalls itself)."],
  [65536, "No desktop", "Takes remote desktop away, even with remote control."],
  [131072, "Run commands", "Run shell commands on the devices and read their output."],
  [262144, "Power off and restart", "Power off, restart or put the devices to sleep."],
  [1048576, "Device details", "See the devices' system and network information."],
  [2097152, "Relay", "Relay other connections (port forwarding) through the devices."],
];

/** Every group right bit the console offers. */
export const GROUP_OFFERED = GROUP_RIGHTS.reduce((bits, [bit]) => bits | bit, 0) >>> 0;

/** What a new member gets unless changed. */
export const DEFAULT_MEMBER_RIGHTS = 8 | 131072 | 1048576;

/** Site rights of a user account shown next to "full administrator": [bit, label, what it
 *  does, inverted]. An inverted right is shown checked when its bit is clear (bit 64 is
 *  "no new device groups", shown as "may create device groups"). */
export const SITE_RIGHTS: [number, string, string, boolean][] = [
  [2, "Manage users", "Add, change and remove accounts and their second factors.", false],
  [32, "Locked", "May not sign in; open sessions end.", false],
  [64, "May create device groups", "Create new device groups (and own them).", true],
  [128, "No command-line tools", "May sign in only with the web console, not with meshctrl or the ironmesh CLI.", false],
  [512, "Recordings", "Watch the session recordings of the groups the user sees.", false],
];

export const SITE_OFFERED = SITE_RIGHTS.reduce((bits, [bit]) => bits | bit, 0) >>> 0;

/** Site rights a full administrator keeps when full administration is switched off and
 *  nothing else is known: every granting right, no restriction. */
export const SITE_FROM_FULL = 2 | 512;

/** Merges the checked offered bits into `current`, keeping every bit not offered (none
 *  when `current` is full rights: those are not single bits to keep). */
export function mergeRights(current: number, offered: number, checked: number): number {
  const kept = current >>> 0 === FULL ? 0 : current & ~offered;
  return (kept | (checked & offered)) >>> 0;
}

/** Names of the offered bits set in `rights` ("Full rights" for all of them). */
export function rightsSummary(rights: number): string {
  if (rights >>> 0 === FULL) return "Full rights";
  const names = GROUP_RIGHTS.filter(([bit]) => (rights & bit) !== 0).map(([, n]) => n);
  const other = (rights & ~GROUP_OFFERED) >>> 0;
  if (other) names.push(`other bits 0x${other.toString(16)}`);
  return names.length ? names.join(", ") : "No rights";
}
