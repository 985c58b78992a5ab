//! Over-size messages on any WebSocket endpoint: the socket is closed with 1009 and a
//! reason that names both sizes, e.g. "Frame size of 2097152 exceeds maximum of 1048576".

/// RFC 6455 "message too big".
pub const CLOSE_TOO_BIG: u16 = 1009;

/// The close reason for a read error, when the error is an over-size message.
pub fn too_big_reason(error: &str) -> Option<String> {
    // tungstenite: "Space limit exceeded: Message too long: <size> > <max>".
    let rest = error.split("Message too long: ").nth(1)?;
    let mut numbers = rest
        .split(" > ")
        .map(|n| n.trim().trim_end_matches(|c: char| !c.is_ascii_digit()));
    let size: u64 = numbers.next()?.parse().ok()?;
    let max: u64 = numbers.next()?.parse().ok()?;
    Some(format!("Frame size of {size} exceeds maximum of {max}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_both_sizes() {
        assert_eq!(
            super::too_big_reason("Space limit exceeded: Message too long: 2097152 > 1048576")
                .as_deref(),
            Some("Frame size of 2097152 exceeds maximum of 1048576")
        );
        assert_eq!(super::too_big_reason("Connection reset"), None);
    }
}
