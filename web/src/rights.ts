// Rights bits with MeshCentral's values, and the labels the console shows for them.

export const FULL = 0xffffffff;

export const GROUP_RIGHTS: [number, string][] = [
  [1, "Edit device group"],
  [2, "Manage group members"],
  [4, "Manage devices"],
  [8, "Remote control"],
  [16, "Agent console"],
  [32, "Server files"],
  [64, "Wake devices"],
  [128, "Edit notes"],
  [256, "Desktop view only"],
  [512, "No terminal"],
  [1024, "No files"],
  [2048, "No Intel AMT"],
  [4096, "Limited desktop input"],
  [8192, "Only own events"],
  [16384, "Chat and notify"],
  [32768, "Uninstall agent"],
  [65536, "No desktop"],
  [131072, "Run commands"],
  [262144, "Reset and power off"],
  [524288, "Guest sharing"],
  [1048576, "Device details"],
  [2097152, "Relay"],
];

/** Names of the bits set in `rights` ("Full rights" for all of them). */
export function rightsSummary(rights: number): string {
  if (rights >>> 0 === FULL) return "Full rights";
  const names = GROUP_RIGHTS.filter(([bit]) => (rights & bit) !== 0).map(([, n]) => n);
  return names.length ? names.join(", ") : "No rights";
}
