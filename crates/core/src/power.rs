//! Each device's power (connection) history, kept for [`HISTORY_DAYS`] days, and the
//! timeline built from it (docs/protocol/control.md §2.7).

use crate::devices::LiveState;
use crate::store::now_ms;
use crate::store::power::PowerChange;
use crate::{Domain, DomainResult};

/// How long changes are kept, and how far back a timeline reaches.
pub const HISTORY_DAYS: i64 = 7;

const DAY_MS: i64 = 86_400_000;

/// One stretch of a timeline: from `from_ms` until the next span (or now), the device was
/// in power state `power` (0 offline or unknown, 1 online).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerSpan {
    pub from_ms: i64,
    pub power: i64,
}

/// The spans of a window starting at `since_ms`: a change before the window is moved to its
/// start (it says what state the window starts in), and repeats of the same state are
/// merged.
pub fn spans(changes: &[PowerChange], since_ms: i64) -> Vec<PowerSpan> {
    let mut out: Vec<PowerSpan> = Vec::new();
    for c in changes {
        if c.time_ms < since_ms {
            // Changes come oldest first: only the last one before the window counts.
            out.clear();
        }
        if out.last().is_some_and(|last| last.power == c.power) {
            continue;
        }
        out.push(PowerSpan {
            from_ms: c.time_ms.max(since_ms),
            power: c.power,
        });
    }
    out
}

impl Domain {
    /// Records a connection change (from [`Domain::announce_connection`]). A failure is
    /// logged, not returned: the agent's connection does not depend on its history.
    pub(crate) async fn record_power(&self, node_id: &str, live: LiveState) {
        let change = PowerChange {
            time_ms: now_ms(),
            power: if live.conn != 0 {
                i64::from(live.pwr.max(1))
            } else {
                0
            },
        };
        if let Err(e) = self.store.insert_power_change(node_id, change).await {
            tracing::debug!(node = node_id, error = %e, "power history not recorded");
        }
    }

    /// The device's timeline over the last [`HISTORY_DAYS`] days, oldest span first. With
    /// nothing recorded, one span from now in `live_power`.
    pub async fn power_timeline(
        &self,
        node_id: &str,
        live_power: i64,
    ) -> DomainResult<Vec<PowerSpan>> {
        let now = now_ms();
        let since = now - HISTORY_DAYS * DAY_MS;
        let changes = self.store.power_changes(node_id, since).await?;
        let mut out = spans(&changes, since);
        if out.is_empty() {
            out.push(PowerSpan {
                from_ms: now,
                power: live_power,
            });
        }
        Ok(out)
    }

    /// At start-up: devices the history still shows online went away with the previous
    /// server process; they are recorded offline from now. Returns how many.
    pub async fn close_power_history(&self) -> DomainResult<u64> {
        Ok(self.store.close_power_history(now_ms()).await?)
    }

    /// Removes changes older than [`HISTORY_DAYS`] days (each device keeps its newest).
    pub async fn apply_power_retention(&self) -> DomainResult<u64> {
        Ok(self
            .store
            .prune_power_history(now_ms() - HISTORY_DAYS * DAY_MS)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(time_ms: i64, power: i64) -> PowerChange {
        PowerChange { time_ms, power }
    }

    #[test]
    fn spans_clip_to_the_window_and_merge_repeats() {
        let changes = [c(10, 1), c(50, 0), c(120, 1), c(130, 1), c(200, 0)];
        assert_eq!(
            spans(&changes, 100),
            // Before the window: on at 10, off at 50 — the window starts off.
            vec![
                PowerSpan {
                    from_ms: 100,
                    power: 0
                },
                PowerSpan {
                    from_ms: 120,
                    power: 1
                },
                PowerSpan {
                    from_ms: 200,
                    power: 0
                },
            ]
        );
        assert_eq!(spans(&[], 100), vec![]);
        assert_eq!(
            spans(&[c(5, 1)], 100),
            vec![PowerSpan {
                from_ms: 100,
                power: 1
            }]
        );
    }
}
