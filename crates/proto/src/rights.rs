//! Rights bit values, exactly MeshCentral's (docs/protocol/control.md §4.2).

/// Rights a user holds on a device group (and so on its devices): `links[..].rights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MeshRights(pub u32);

impl MeshRights {
    pub const EDIT_MESH: u32 = 1;
    pub const MANAGE_USERS: u32 = 2;
    pub const MANAGE_COMPUTERS: u32 = 4;
    pub const REMOTE_CONTROL: u32 = 8;
    pub const AGENT_CONSOLE: u32 = 16;
    pub const SERVER_FILES: u32 = 32;
    pub const WAKE_DEVICE: u32 = 64;
    pub const SET_NOTES: u32 = 128;
    pub const REMOTE_VIEW_ONLY: u32 = 256;
    pub const NO_TERMINAL: u32 = 512;
    pub const NO_FILES: u32 = 1024;
    pub const NO_AMT: u32 = 2048;
    pub const DESK_LIMITED_INPUT: u32 = 4096;
    pub const LIMIT_EVENTS: u32 = 8192;
    pub const CHAT_NOTIFY: u32 = 16384;
    pub const UNINSTALL: u32 = 32768;
    pub const NO_DESKTOP: u32 = 65536;
    pub const REMOTE_COMMAND: u32 = 131072;
    pub const RESET_OFF: u32 = 262144;
    pub const GUEST_SHARING: u32 = 524288;
    pub const DEVICE_DETAILS: u32 = 1048576;
    pub const RELAY: u32 = 2097152;
    /// All bits set: full administrator of the group. The "no…" bits are ignored then.
    pub const FULL: u32 = u32::MAX;
    /// The bits that take something away rather than grant it.
    pub const RESTRICTIONS: u32 = Self::REMOTE_VIEW_ONLY
        | Self::NO_TERMINAL
        | Self::NO_FILES
        | Self::NO_AMT
        | Self::DESK_LIMITED_INPUT
        | Self::LIMIT_EVENTS
        | Self::NO_DESKTOP;

    /// Whether these rights grant nothing that `other` does not: every granting bit of
    /// `self` is held by `other` (full rights cover everything; full rights are covered
    /// only by full rights).
    pub fn covered_by(self, other: MeshRights) -> bool {
        if other.is_full() {
            return true;
        }
        if self.is_full() {
            return false;
        }
        let grants = self.0 & !Self::RESTRICTIONS;
        grants & !other.0 == 0
    }

    /// Named bits, for display (console checkboxes, CLI tables).
    pub const NAMES: &'static [(u32, &'static str)] = &[
        (Self::EDIT_MESH, "editgroup"),
        (Self::MANAGE_USERS, "manageusers"),
        (Self::MANAGE_COMPUTERS, "managedevices"),
        (Self::REMOTE_CONTROL, "remotecontrol"),
        (Self::AGENT_CONSOLE, "agentconsole"),
        (Self::SERVER_FILES, "serverfiles"),
        (Self::WAKE_DEVICE, "wakedevices"),
        (Self::SET_NOTES, "notes"),
        (Self::REMOTE_VIEW_ONLY, "desktopviewonly"),
        (Self::NO_TERMINAL, "noterminal"),
        (Self::NO_FILES, "nofiles"),
        (Self::NO_AMT, "noamt"),
        (Self::DESK_LIMITED_INPUT, "limiteddesktop"),
        (Self::LIMIT_EVENTS, "limitedevents"),
        (Self::CHAT_NOTIFY, "chatnotify"),
        (Self::UNINSTALL, "uninstall"),
        (Self::NO_DESKTOP, "nodesktop"),
        (Self::REMOTE_COMMAND, "remotecommand"),
        (Self::RESET_OFF, "resetoff"),
        (Self::GUEST_SHARING, "guestsharing"),
        (Self::DEVICE_DETAILS, "devicedetails"),
        (Self::RELAY, "relay"),
    ];
}

/// Server-wide rights of a user: `user.siteadmin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SiteRights(pub u32);

impl SiteRights {
    pub const SERVER_BACKUP: u32 = 1;
    pub const MANAGE_USERS: u32 = 2;
    pub const SERVER_RESTORE: u32 = 4;
    pub const FILE_ACCESS: u32 = 8;
    pub const SERVER_UPDATE: u32 = 16;
    /// Login refused.
    pub const LOCKED: u32 = 32;
    pub const NO_NEW_GROUPS: u32 = 64;
    /// "notools": may not use meshctrl-style clients.
    pub const NO_MESH_CMD: u32 = 128;
    pub const USER_GROUPS: u32 = 256;
    pub const RECORDINGS: u32 = 512;
    pub const LOCK_SETTINGS: u32 = 1024;
    pub const ALL_EVENTS: u32 = 2048;
    pub const NO_NEW_DEVICES: u32 = 4096;
    /// Full site administrator.
    pub const FULL: u32 = u32::MAX;
    /// The bits that take something away rather than grant it.
    pub const RESTRICTIONS: u32 =
        Self::LOCKED | Self::NO_NEW_GROUPS | Self::NO_MESH_CMD | Self::NO_NEW_DEVICES;

    /// Whether these rights grant nothing that `other` does not (restrictions aside;
    /// full rights are covered only by full rights).
    pub fn covered_by(self, other: SiteRights) -> bool {
        if other.is_full() {
            return true;
        }
        if self.is_full() {
            return false;
        }
        (self.0 & !Self::RESTRICTIONS) & !other.0 == 0
    }
}

/// The checks both kinds of rights share: all ones means "full administrator", who holds
/// every right and is subject to no "no…" restriction bit.
macro_rules! rights_checks {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn is_full(self) -> bool {
                self.0 == u32::MAX
            }

            /// True when every bit of `bits` is granted (full administrators hold everything).
            pub fn has(self, bits: u32) -> bool {
                self.is_full() || self.0 & bits == bits
            }

            /// True when a restriction bit (NOTERMINAL, LOCKED, …) applies.
            pub fn restricted(self, no_bit: u32) -> bool {
                !self.is_full() && self.0 & no_bit != 0
            }
        }
    )*};
}

rights_checks!(MeshRights, SiteRights);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_rights_ignore_restrictions() {
        let full = MeshRights(MeshRights::FULL);
        assert!(full.has(MeshRights::REMOTE_COMMAND));
        assert!(!full.restricted(MeshRights::NO_TERMINAL));
        let limited = MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL);
        assert!(limited.has(MeshRights::REMOTE_CONTROL));
        assert!(!limited.has(MeshRights::REMOTE_COMMAND));
        assert!(limited.restricted(MeshRights::NO_TERMINAL));
    }

    #[test]
    fn coverage_of_rights() {
        let manager = MeshRights(MeshRights::MANAGE_USERS | MeshRights::REMOTE_CONTROL);
        assert!(
            MeshRights(MeshRights::REMOTE_CONTROL | MeshRights::NO_TERMINAL).covered_by(manager)
        );
        assert!(!MeshRights(MeshRights::REMOTE_COMMAND).covered_by(manager));
        assert!(!MeshRights(MeshRights::FULL).covered_by(manager));
        assert!(MeshRights(MeshRights::FULL).covered_by(MeshRights(MeshRights::FULL)));
        assert!(MeshRights(MeshRights::REMOTE_COMMAND).covered_by(MeshRights(MeshRights::FULL)));
    }

    #[test]
    fn values_match_meshcentral() {
        // meshctrl `addusertodevice --fullrights` gives 8+16+32+64+128+16384+32768.
        let v = MeshRights::REMOTE_CONTROL
            | MeshRights::AGENT_CONSOLE
            | MeshRights::SERVER_FILES
            | MeshRights::WAKE_DEVICE
            | MeshRights::SET_NOTES
            | MeshRights::CHAT_NOTIFY
            | MeshRights::UNINSTALL;
        assert_eq!(v, 8 + 16 + 32 + 64 + 128 + 16384 + 32768);
        assert_eq!(MeshRights::RELAY, 0x200000);
        assert_eq!(SiteRights::NO_MESH_CMD, 128);
    }
}
