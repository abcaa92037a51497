//! One buffer for an application that mixes logging libraries: the
//! application uses `tracing`, its inventory "library" uses `log` and its
//! payments "library" uses `slog`. One flush carries all three, in one trace
//! with correct parents. Writes to stdout, or wherever `LOG_TRG` points.
//!
//! ```sh
//! cargo run -p aitrace-examples --example mixed
//! ```

use std::process::ExitCode;
use std::time::Duration;

use aitrace_core::BufferedLogger;
use aitrace_slog::AitraceDrain;
use aitrace_tracing::AitraceLayer;
use slog::Drain;
use tracing_subscriber::prelude::*;

/// A library that logs through `log`.
mod inventory {
    pub(crate) fn reserve(sku: &str, qty: u32) -> bool {
        log::info!(sku, qty; "stock_reserved");
        if qty > 5 {
            log::warn!(sku, requested = qty, available = 5; "partial_stock");
            return false;
        }
        true
    }
}

/// A library that logs through `slog`.
mod payments {
    pub(crate) struct Gateway {
        pub(crate) log: slog::Logger,
    }

    impl Gateway {
        pub(crate) fn charge(&self, order_id: &str, amount: f64) -> Result<String, String> {
            let log = self.log.new(slog::o!("order_id" => order_id.to_owned()));
            slog::info!(log, "charge_requested"; "amount" => amount, "currency" => "EUR");
            if amount > 1000.0 {
                slog::error!(log, "charge_declined"; "reason" => "limit");
                return Err("over the card limit".to_owned());
            }
            slog::info!(log, "charge_captured"; "transaction_id" => format!("tx_{order_id}"));
            Ok(format!("tx_{order_id}"))
        }
    }
}

#[tracing::instrument(skip(gateway), fields(items = lines.len()), err)]
fn handle_order(
    order_id: &str,
    lines: &[(&str, u32, f64)],
    gateway: &payments::Gateway,
) -> Result<(), String> {
    tracing::info!(order_id, "order_received");
    let reserved = tracing::info_span!("reserve_inventory").in_scope(|| {
        lines
            .iter()
            .all(|(sku, qty, _)| inventory::reserve(sku, *qty))
    });
    if !reserved {
        tracing::warn!(order_id, "backordered");
    }
    let total: f64 = lines
        .iter()
        .map(|(_, qty, price)| f64::from(*qty) * price)
        .sum();
    let transaction = tracing::info_span!("charge_payment", amount = total)
        .in_scope(|| gateway.charge(order_id, total))?;
    tracing::info!(
        order_id,
        transaction = transaction.as_str(),
        "order_completed"
    );
    Ok(())
}

fn main() -> ExitCode {
    let log = BufferedLogger::new();
    tracing_subscriber::registry()
        .with(AitraceLayer::new(log.clone()))
        .init();
    aitrace_log::init(log.clone()).expect("no other global logger");
    let gateway = payments::Gateway {
        log: slog::Logger::root(
            AitraceDrain::new(log.clone()).fuse(),
            slog::o!("library" => "payments"),
        ),
    };

    tracing::info_span!("checkout_batch", batch = 7).in_scope(|| {
        let _ = handle_order("o2001", &[("BOOK-42", 2, 12.5)], &gateway);
        let _ = handle_order("o2002", &[("DESK-1", 6, 379.75)], &gateway);
    });

    // The global subscriber holds a handle that never drops: shut down
    // before leaving, so records no output took go to a file whose path is
    // printed.
    match log.shutdown(Duration::from_secs(5)) {
        Ok(report) => {
            eprintln!("mixed: flushed to {}: {report}", log.outputs()[0]);
            if report.is_complete() {
                return ExitCode::SUCCESS;
            }
        }
        Err(err) => eprintln!("mixed: flush failed: {err}"),
    }
    ExitCode::FAILURE
}
