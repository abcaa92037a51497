//! A port of the Python aitrace e-commerce test: several orders, each in its
//! own trace context, with nested steps and typed fields; one order's payment
//! is declined. Writes to stdout, or wherever `LOG_TRG` points. Card
//! numbers are redacted at capture (`card=[REDACTED]`) by the common value
//! patterns.
//!
//! ```sh
//! cargo run -p aitrace-examples --example checkout
//! LOG_TRG=http://localhost:8000/api/ingest cargo run -p aitrace-examples --example checkout
//! ```

use std::process::ExitCode;
use std::time::Duration;

use aitrace_core::redact::Redactor;
use aitrace_core::{BufferedLogger, Value, info};

struct Item {
    sku: &'static str,
    qty: u32,
    price: f64,
}

struct Order {
    id: &'static str,
    user_id: &'static str,
    items: Vec<Item>,
    card: &'static str,
}

impl Order {
    fn total(&self) -> f64 {
        let cents: f64 = self.items.iter().map(|i| f64::from(i.qty) * i.price).sum();
        (cents * 100.0).round() / 100.0
    }
}

fn items_value(items: &[Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                Value::from_iter([
                    ("sku", Value::from(i.sku)),
                    ("qty", Value::from(i.qty)),
                    ("price", Value::from(i.price)),
                ])
            })
            .collect(),
    )
}

fn validate_cart(log: &BufferedLogger, order: &Order) -> Result<(), String> {
    log.span("validate_cart")
        .field("items", order.items.len())
        .try_in_scope(|_| {
            if order.items.is_empty() {
                return Err("empty cart".to_owned());
            }
            info!(
                log,
                "cart_validated",
                user_id = order.user_id,
                total = order.total()
            );
            Ok(())
        })
}

fn reserve_inventory(log: &BufferedLogger, order: &Order) -> Result<(), String> {
    log.span("reserve_inventory").try_in_scope(|span| {
        for item in &order.items {
            info!(
                log,
                "item_reserved",
                sku = item.sku,
                qty = item.qty,
                warehouse = "north"
            );
        }
        span.record(
            "reserved_skus",
            order.items.iter().map(|i| i.sku).collect::<Vec<_>>(),
        );
        Ok(())
    })
}

fn charge_payment(log: &BufferedLogger, order: &Order) -> Result<String, String> {
    log.span("charge_payment")
        .field("amount", order.total())
        .field("currency", "EUR")
        .try_in_scope(|_| {
            info!(
                log,
                "payment_requested",
                gateway = "stripe-sim",
                card = order.card
            );
            if order.card.ends_with("0002") {
                log.error("payment_declined")
                    .field("reason", "insufficient_funds")
                    .field("amount", order.total())
                    .emit();
                return Err(format!("card {} declined", order.card));
            }
            let transaction = format!("tx_{}", order.id);
            info!(
                log,
                "payment_captured",
                transaction_id = transaction.as_str()
            );
            Ok(transaction)
        })
}

fn send_confirmation(log: &BufferedLogger, order: &Order, transaction: &str) {
    log.span("send_confirmation").in_scope(|_| {
        info!(
            log,
            "email_sent",
            user_id = order.user_id,
            template = "order_confirmed",
            transaction_id = transaction
        );
    });
}

fn simulate_checkout(log: &BufferedLogger, order: &Order) -> Result<(), String> {
    info!(
        log,
        "checkout_started",
        order_id = order.id,
        user_id = order.user_id,
        items = items_value(&order.items),
        total = order.total()
    );
    validate_cart(log, order)?;
    reserve_inventory(log, order)?;
    let transaction = charge_payment(log, order)?;
    send_confirmation(log, order, &transaction);
    info!(log, "checkout_completed", order_id = order.id);
    Ok(())
}

fn main() -> ExitCode {
    // Card numbers (and tokens, passwords in URLs, …) never reach the output.
    let log = BufferedLogger::builder()
        .redactor(Redactor::default().with_common_value_patterns())
        .build();
    let orders = vec![
        Order {
            id: "o1001",
            user_id: "u1",
            items: vec![Item {
                sku: "BOOK-42",
                qty: 2,
                price: 12.5,
            }],
            card: "4242424242424242",
        },
        Order {
            id: "o1002",
            user_id: "u2",
            items: vec![
                Item {
                    sku: "LAMP-7",
                    qty: 1,
                    price: 89.99,
                },
                Item {
                    sku: "DESK-1",
                    qty: 1,
                    price: 379.75,
                },
            ],
            card: "4000000000000002",
        },
        Order {
            id: "o1003",
            user_id: "u3",
            items: vec![Item {
                sku: "MUG-3",
                qty: 4,
                price: 7.25,
            }],
            card: "5555555555554444",
        },
    ];
    let mut incomplete = false;
    for order in &orders {
        let trace = log.trace_context("process_order");
        trace.span().record("order_id", order.id);
        if let Err(err) = simulate_checkout(&log, order) {
            trace.span().fail(&err);
            log.warn("checkout_failed")
                .field("order_id", order.id)
                .field("error", err)
                .emit();
        }
        match trace.finish() {
            // One line: delivered, refused by the receiver, dropped, and
            // where refused records were written.
            Ok(report) => {
                eprintln!(
                    "checkout: order {} to {}: {report}",
                    order.id,
                    log.outputs()[0]
                );
                incomplete |= !report.is_complete();
            }
            Err(err) => {
                incomplete = true;
                eprintln!("checkout: order {}: flush failed: {err}", order.id);
                // The next trace_context clears the buffer, records kept
                // for the next flush included: write them to a file now
                // (aitrace prints its path).
                let _ = log.shutdown(Duration::from_secs(5));
            }
        }
    }
    // Shut down before leaving: records no output took are written to a
    // file whose path is printed. `std::process::exit` would skip this (it
    // runs no destructors), so main returns its exit code instead.
    if let Err(err) = log.shutdown(Duration::from_secs(5)) {
        incomplete = true;
        eprintln!("checkout: shutdown: {err}");
    }
    if incomplete {
        eprintln!("checkout: some records were not delivered");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
