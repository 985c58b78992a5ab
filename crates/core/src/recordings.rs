//! Session recordings and the audit records of relayed sessions.
//!
//! A device group whose flags have [`RECORD_SESSIONS`] gets its terminal sessions recorded
//! (the server writes the file; see the server's relay tap). A recording is listed with the
//! audit record of its session and follows the event log's retention. Who may watch them:
//! full site administrators, and users with the RECORDINGS site right on groups they see.

use ironmesh_proto::rights::SiteRights;

use crate::access::Actor;
use crate::events::Event;
use crate::store::{now_ms, DeviceGroup, DeviceRecord, RecordingRecord};
use crate::{Domain, DomainResult};

/// Device group flag: record this group's sessions (MeshCentral's value).
pub const RECORD_SESSIONS: i64 = 4;

/// Format of terminal recordings: asciicast v2 (one JSON header line, then one
/// `[seconds, "o"|"i"|"r", text]` line per event).
pub const FORMAT_ASCIICAST: &str = "asciicast-v2";

impl Domain {
    /// A device and its group (for the audit records and recording policy of a session
    /// with it), if both exist.
    pub async fn device_and_group(
        &self,
        node_id: &str,
    ) -> DomainResult<Option<(DeviceRecord, DeviceGroup)>> {
        let Some(device) = self.store.device(node_id).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .group(&device.group_id)
            .await?
            .map(|group| (device, group)))
    }

    /// Publishes an event about a device: seen by the device's group, recorded with it.
    pub async fn publish_about_device(&self, node_id: Option<&str>, mut event: Event) {
        if let Some(node_id) = node_id {
            event = event.node(node_id);
            if let Ok(Some((device, _))) = self.device_and_group(node_id).await {
                event = event.group(&device.group_id);
            }
        }
        self.publish(event).await;
    }

    pub async fn save_recording(&self, recording: &RecordingRecord) -> DomainResult<()> {
        Ok(self.store.insert_recording(recording).await?)
    }

    fn may_watch(actor: &Actor, recording: &RecordingRecord) -> bool {
        if actor.second_factor_pending {
            return false;
        }
        actor.is_full_admin()
            || (actor.site().has(SiteRights::RECORDINGS)
                && recording
                    .group_id
                    .as_deref()
                    .is_some_and(|g| actor.group_rights(g).is_some()))
    }

    /// Recordings `actor` may watch, newest first (of one device when given).
    pub async fn recordings(
        &self,
        actor: &Actor,
        node_id: Option<&str>,
        limit: i64,
    ) -> DomainResult<Vec<RecordingRecord>> {
        Ok(self
            .store
            .recordings(node_id, limit)
            .await?
            .into_iter()
            .filter(|r| Self::may_watch(actor, r))
            .collect())
    }

    /// One recording, if it exists and `actor` may watch it.
    pub async fn recording(
        &self,
        actor: &Actor,
        id: &str,
    ) -> DomainResult<Option<RecordingRecord>> {
        Ok(self
            .store
            .recording(id)
            .await?
            .filter(|r| Self::may_watch(actor, r)))
    }

    /// Forgets recordings older than `days` days; returns their files, for the caller to
    /// delete.
    pub async fn apply_recording_retention(&self, days: u32) -> DomainResult<Vec<String>> {
        let before = now_ms() - i64::from(days) * 86_400_000;
        Ok(self.store.prune_recordings(before).await?)
    }
}
