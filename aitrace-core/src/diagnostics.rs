//! The exit report's count of dropped records; the rate-limited lines
//! themselves are [`aitrace_model::diagnostics`].

pub(crate) use aitrace_model::diagnostics::{Diagnostics, PROCESS};

/// The exit report's line when records were dropped: their total since the
/// logger started (the buffer's overflow drops included) and where, as
/// `(total, line)`; `None` when nothing was dropped. The lines printed as
/// drops happen are rate-limited (one per [`DIAGNOSTIC_INTERVAL`]), so only
/// this one gives the whole count.
pub(crate) fn drops_in_all(
    overflow: u64,
    outputs: &[crate::stats::OutputStats],
) -> Option<(u64, String)> {
    let total = overflow + outputs.iter().map(|o| o.dropped).sum::<u64>();
    if total == 0 {
        return None;
    }
    let mut parts: Vec<String> = (outputs.iter())
        .filter(|o| o.dropped > 0)
        .map(|o| format!("{}: {}", o.output, o.dropped))
        .collect();
    if overflow > 0 {
        parts.push(format!("buffer full: {overflow}"));
    }
    let records = if total == 1 { "record" } else { "records" };
    Some((
        total,
        format!(
            "{total} {records} dropped in all since the logger started ({})",
            parts.join("; ")
        ),
    ))
}

/// As delivery stops: the line of [`drops_in_all`] on stderr, when it
/// counts drops that no earlier call told of (`told` keeps the total told;
/// the lines printed as drops happen are rate-limited, so they may have
/// held most of them back).
pub(crate) fn report_drops_in_all(
    overflow: u64,
    outputs: &[crate::stats::OutputStats],
    told: &std::sync::atomic::AtomicU64,
) {
    let Some((total, line)) = drops_in_all(overflow, outputs) else {
        return;
    };
    if total > told.swap(total, std::sync::atomic::Ordering::SeqCst) {
        eprintln!("aitrace: {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_in_all_name_each_output_and_the_buffer() {
        let output = |name: &str, dropped| crate::stats::OutputStats {
            output: name.into(),
            dropped,
            ..Default::default()
        };
        assert!(drops_in_all(0, &[output("a", 0)]).is_none());
        let (total, line) = drops_in_all(3, &[output("a", 4900), output("b", 0)]).unwrap();
        assert_eq!(total, 4903);
        assert_eq!(
            line,
            "4903 records dropped in all since the logger started (a: 4900; buffer full: 3)"
        );
    }
}
