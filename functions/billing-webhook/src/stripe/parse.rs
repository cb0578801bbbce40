//! Stripe event JSON -> [`ProviderEvent`]. Only the fields the platform keeps are read: payment
//! method details, billing details, addresses, names and emails in the payload are never
//! touched, so they cannot end up stored or logged.
//!
//! Both shapes of the fields Stripe moved in API version 2025-03-31 are read: a subscription's
//! period end at the top level or on its items, an invoice's subscription at the top level or
//! under `parent.subscription_details`.

use serde_json::Value;
use shared_billing::{PaymentOutcome, ProviderId, SubscriptionStatus};
use shared_core::domain::TenantId;
use shared_core::error::AppError;
use time::OffsetDateTime;

use crate::provider::{
    invalid_event, Charge, Checkout, Customer, EventKind, Invoice, ProviderEvent, Subscription,
    SubscriptionChange,
};

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// An id field: a string, or an expanded object with an `id`. Present but not a provider id is
/// an error (a payload we do not understand), absent is `None`.
fn id_at(v: &Value, path: &[&str]) -> Result<Option<ProviderId>, AppError> {
    let raw = match at(v, path) {
        None => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(obj @ Value::Object(_)) => obj
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_event(&format!("{} has no id", path.join("."))))?,
        Some(_) => return Err(invalid_event(&format!("{} is not an id", path.join(".")))),
    };
    ProviderId::parse(raw)
        .map(Some)
        .ok_or_else(|| invalid_event(&format!("{} is not an id", path.join("."))))
}

fn req_id(v: &Value, path: &[&str]) -> Result<ProviderId, AppError> {
    id_at(v, path)?.ok_or_else(|| invalid_event(&format!("{} is missing", path.join("."))))
}

fn int_at(v: &Value, path: &[&str]) -> Result<Option<i64>, AppError> {
    match at(v, path) {
        None => Ok(None),
        Some(x) => x
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid_event(&format!("{} is not an integer", path.join(".")))),
    }
}

fn time_at(v: &Value, path: &[&str]) -> Result<Option<OffsetDateTime>, AppError> {
    int_at(v, path)?
        .map(|t| {
            OffsetDateTime::from_unix_timestamp(t)
                .map_err(|_| invalid_event(&format!("{} is out of range", path.join("."))))
        })
        .transpose()
}

fn bool_at(v: &Value, path: &[&str]) -> bool {
    at(v, path).and_then(Value::as_bool).unwrap_or(false)
}

fn amount_at(v: &Value, path: &[&str]) -> Result<i64, AppError> {
    Ok(int_at(v, path)?.unwrap_or(0))
}

fn currency_at(v: &Value, path: &[&str]) -> Result<String, AppError> {
    let c = str_at(v, path).ok_or_else(|| invalid_event("currency is missing"))?;
    if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(c.to_ascii_lowercase())
    } else {
        Err(invalid_event("currency is not an ISO 4217 code"))
    }
}

/// A short free-text field Stripe defines (a status, an invoice number, a reason): kept only if
/// it is printable and short.
fn short_text(v: &Value, path: &[&str], max: usize) -> Option<String> {
    str_at(v, path)
        .filter(|s| !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control))
        .map(str::to_string)
}

/// The tenant named in a metadata object. A value that is not a tenant id is ignored: the
/// metadata is ours, so this is a bug to log, not a reason to refuse the event.
fn tenant_in(v: &Value, path: &[&str]) -> Option<TenantId> {
    let raw = str_at(v, path)?;
    let parsed = TenantId::parse(raw).ok();
    if parsed.is_none() {
        tracing::warn!(
            field = path.join("."),
            "metadata tenant_id is not a tenant id"
        );
    }
    parsed
}

fn https_url(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path)
        .filter(|u| u.starts_with("https://") && u.len() <= 2048)
        .map(str::to_string)
}

fn valid_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 100
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
}

fn status(raw: &str) -> Option<SubscriptionStatus> {
    SubscriptionStatus::parse(raw).or(match raw {
        // The first payment is pending (Stripe gives it 23 hours).
        "incomplete" => Some(SubscriptionStatus::PastDue),
        // The first payment never came: the subscription is over.
        "incomplete_expired" => Some(SubscriptionStatus::Canceled),
        // A trial ended without a payment method: nothing is being paid.
        "paused" => Some(SubscriptionStatus::Unpaid),
        _ => None,
    })
}

pub fn parse_event(raw: &[u8]) -> Result<ProviderEvent, AppError> {
    let v: Value = serde_json::from_slice(raw).map_err(|_| invalid_event("not JSON"))?;
    if str_at(&v, &["object"]) != Some("event") {
        return Err(invalid_event("not an event object"));
    }
    let id = req_id(&v, &["id"])?;
    let event_type = str_at(&v, &["type"])
        .filter(|t| valid_type(t))
        .ok_or_else(|| invalid_event("type is missing or malformed"))?
        .to_string();
    let created = int_at(&v, &["created"])?
        .filter(|c| *c > 0)
        .ok_or_else(|| invalid_event("created is missing"))?;
    let obj = at(&v, &["data", "object"]).ok_or_else(|| invalid_event("data.object is missing"))?;

    let kind = match event_type.as_str() {
        "checkout.session.completed" => EventKind::CheckoutCompleted(checkout(obj)?),
        "customer.subscription.created" => subscription(obj, SubscriptionChange::Created)?,
        "customer.subscription.updated" => subscription(obj, SubscriptionChange::Updated)?,
        "customer.subscription.deleted" => subscription(obj, SubscriptionChange::Deleted)?,
        "customer.subscription.trial_will_end" => {
            subscription(obj, SubscriptionChange::TrialWillEnd)?
        }
        "invoice.paid" => EventKind::InvoicePayment {
            outcome: PaymentOutcome::Succeeded,
            invoice: Box::new(invoice(obj)?),
        },
        "invoice.payment_failed" => EventKind::InvoicePayment {
            outcome: PaymentOutcome::Failed,
            invoice: Box::new(invoice(obj)?),
        },
        "invoice.payment_action_required" => EventKind::InvoicePayment {
            outcome: PaymentOutcome::ActionRequired,
            invoice: Box::new(invoice(obj)?),
        },
        "charge.refunded" => EventKind::ChargeRefunded(charge(obj)?),
        "customer.updated" => EventKind::CustomerUpdated(customer(obj)?),
        "customer.deleted" => EventKind::CustomerDeleted(customer(obj)?),
        _ => EventKind::Unhandled,
    };
    Ok(ProviderEvent {
        id,
        event_type,
        created,
        kind,
    })
}

fn checkout(o: &Value) -> Result<Checkout, AppError> {
    let tenant = match str_at(o, &["client_reference_id"]) {
        Some(_) => tenant_in(o, &["client_reference_id"]),
        None => tenant_in(o, &["metadata", "tenant_id"]),
    };
    Ok(Checkout {
        session_id: req_id(o, &["id"])?,
        tenant,
        customer: id_at(o, &["customer"])?,
        subscription: id_at(o, &["subscription"])?,
    })
}

fn subscription(o: &Value, change: SubscriptionChange) -> Result<EventKind, AppError> {
    let raw_status = str_at(o, &["status"]).ok_or_else(|| invalid_event("status is missing"))?;
    let Some(status) = status(raw_status) else {
        // A status Stripe added after this code: recorded and counted, not guessed at.
        tracing::warn!(
            status = raw_status.chars().take(40).collect::<String>(),
            "unknown subscription status"
        );
        return Ok(EventKind::Unhandled);
    };
    let first_item = at(o, &["items", "data"])
        .and_then(Value::as_array)
        .and_then(|items| items.first())
        .cloned()
        .unwrap_or(Value::Null);
    let price_id = match id_at(&first_item, &["price", "id"])? {
        Some(p) => Some(p),
        None => id_at(&first_item, &["plan", "id"])?,
    };
    let current_period_end = match time_at(o, &["current_period_end"])? {
        Some(t) => Some(t),
        None => time_at(&first_item, &["current_period_end"])?,
    };
    Ok(EventKind::Subscription {
        change,
        subscription: Box::new(Subscription {
            id: req_id(o, &["id"])?,
            customer: id_at(o, &["customer"])?,
            tenant: tenant_in(o, &["metadata", "tenant_id"]),
            status,
            price_id,
            current_period_end,
            cancel_at_period_end: bool_at(o, &["cancel_at_period_end"]),
            cancel_at: time_at(o, &["cancel_at"])?,
            canceled_at: time_at(o, &["canceled_at"])?,
            ended_at: time_at(o, &["ended_at"])?,
            trial_end: time_at(o, &["trial_end"])?,
        }),
    })
}

fn invoice(o: &Value) -> Result<Invoice, AppError> {
    let subscription = match id_at(o, &["subscription"])? {
        Some(s) => Some(s),
        None => id_at(o, &["parent", "subscription_details", "subscription"])?,
    };
    let tenant = tenant_in(o, &["subscription_details", "metadata", "tenant_id"])
        .or_else(|| {
            tenant_in(
                o,
                &["parent", "subscription_details", "metadata", "tenant_id"],
            )
        })
        .or_else(|| tenant_in(o, &["metadata", "tenant_id"]));
    let first_line = at(o, &["lines", "data"])
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .cloned()
        .unwrap_or(Value::Null);
    let period_start = match time_at(&first_line, &["period", "start"])? {
        Some(t) => Some(t),
        None => time_at(o, &["period_start"])?,
    };
    let period_end = match time_at(&first_line, &["period", "end"])? {
        Some(t) => Some(t),
        None => time_at(o, &["period_end"])?,
    };
    Ok(Invoice {
        id: req_id(o, &["id"])?,
        customer: id_at(o, &["customer"])?,
        tenant,
        subscription,
        number: short_text(o, &["number"], 64),
        status: short_text(o, &["status"], 32).unwrap_or_else(|| "unknown".into()),
        currency: currency_at(o, &["currency"])?,
        amount_due: amount_at(o, &["amount_due"])?,
        amount_paid: amount_at(o, &["amount_paid"])?,
        amount_remaining: amount_at(o, &["amount_remaining"])?,
        created: time_at(o, &["created"])?.ok_or_else(|| invalid_event("created is missing"))?,
        due_date: time_at(o, &["due_date"])?,
        paid_at: time_at(o, &["status_transitions", "paid_at"])?,
        period_start,
        period_end,
        hosted_invoice_url: https_url(o, &["hosted_invoice_url"]),
        billing_reason: short_text(o, &["billing_reason"], 64),
        attempt_count: int_at(o, &["attempt_count"])?
            .unwrap_or(0)
            .clamp(0, u32::MAX as i64) as u32,
        next_payment_attempt: time_at(o, &["next_payment_attempt"])?,
        payment_intent: id_at(o, &["payment_intent"])?,
        charge: id_at(o, &["charge"])?,
    })
}

fn charge(o: &Value) -> Result<Charge, AppError> {
    Ok(Charge {
        id: req_id(o, &["id"])?,
        customer: id_at(o, &["customer"])?,
        invoice: id_at(o, &["invoice"])?,
        payment_intent: id_at(o, &["payment_intent"])?,
        amount: amount_at(o, &["amount"])?,
        amount_refunded: amount_at(o, &["amount_refunded"])?,
        currency: currency_at(o, &["currency"])?,
        refunded: bool_at(o, &["refunded"]),
    })
}

fn customer(o: &Value) -> Result<Customer, AppError> {
    Ok(Customer {
        id: req_id(o, &["id"])?,
        tenant: tenant_in(o, &["metadata", "tenant_id"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ty: &str, object: Value) -> Vec<u8> {
        json!({
            "id": "evt_test", "object": "event", "type": ty, "created": 1_795_953_600,
            "api_version": "2024-06-20", "livemode": false,
            "data": { "object": object }
        })
        .to_string()
        .into_bytes()
    }

    fn code(r: Result<ProviderEvent, AppError>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn not_an_event_is_refused() {
        assert_eq!(code(parse_event(b"nope")), "invalid_event");
        assert_eq!(code(parse_event(b"{}")), "invalid_event");
        assert_eq!(
            code(parse_event(
                br#"{"object":"event","id":"evt_1","type":"x","created":1}"#
            )),
            "invalid_event",
            "no data.object"
        );
        let bad_id =
            br#"{"object":"event","id":"evt#1","type":"x","created":1,"data":{"object":{}}}"#;
        assert_eq!(code(parse_event(bad_id)), "invalid_event");
        let bad_type =
            br#"{"object":"event","id":"evt_1","type":"X Y","created":1,"data":{"object":{}}}"#;
        assert_eq!(code(parse_event(bad_type)), "invalid_event");
    }

    #[test]
    fn unknown_types_are_unhandled() {
        let e = parse_event(&event("product.created", json!({"id": "prod_1"}))).unwrap();
        assert!(matches!(e.kind, EventKind::Unhandled));
        assert_eq!(e.event_type, "product.created");
    }

    #[test]
    fn subscription_in_both_api_shapes() {
        let old = json!({
            "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": "active",
            "metadata": {"tenant_id": "tenant-a"}, "current_period_end": 1_798_000_000,
            "items": {"data": [{"price": {"id": "price_pro_local"}}]}
        });
        let new = json!({
            "id": "sub_1", "object": "subscription", "customer": {"id": "cus_1"}, "status": "incomplete",
            "metadata": {"tenant_id": "tenant-a"},
            "items": {"data": [{"price": {"id": "price_pro_local"}, "current_period_end": 1_798_000_000}]}
        });
        for (o, want) in [
            (old, SubscriptionStatus::Active),
            (new, SubscriptionStatus::PastDue),
        ] {
            let e = parse_event(&event("customer.subscription.updated", o)).unwrap();
            let EventKind::Subscription {
                subscription: s,
                change,
            } = e.kind
            else {
                panic!("not a subscription event")
            };
            assert_eq!(change, SubscriptionChange::Updated);
            assert_eq!(s.status, want);
            assert_eq!(s.customer.unwrap().as_str(), "cus_1");
            assert_eq!(s.tenant.unwrap().as_str(), "tenant-a");
            assert_eq!(s.price_id.unwrap().as_str(), "price_pro_local");
            assert_eq!(
                s.current_period_end.unwrap().unix_timestamp(),
                1_798_000_000
            );
        }
    }

    #[test]
    fn an_unknown_subscription_status_is_not_guessed() {
        let o = json!({"id": "sub_1", "status": "hibernating", "customer": "cus_1"});
        let e = parse_event(&event("customer.subscription.updated", o)).unwrap();
        assert!(matches!(e.kind, EventKind::Unhandled));
    }

    #[test]
    fn invoice_tenant_from_either_subscription_details() {
        let new = json!({
            "id": "in_1", "customer": "cus_1", "currency": "EUR", "created": 1_795_000_000,
            "status": "open", "amount_due": 2900,
            "parent": {"subscription_details": {"subscription": "sub_1", "metadata": {"tenant_id": "tenant-a"}}}
        });
        let e = parse_event(&event("invoice.payment_failed", new)).unwrap();
        let EventKind::InvoicePayment { invoice, outcome } = e.kind else {
            panic!()
        };
        assert_eq!(outcome, PaymentOutcome::Failed);
        assert_eq!(invoice.tenant.unwrap().as_str(), "tenant-a");
        assert_eq!(invoice.subscription.unwrap().as_str(), "sub_1");
        assert_eq!(invoice.currency, "eur");
    }

    #[test]
    fn a_bad_tenant_in_metadata_is_ignored_not_fatal() {
        let o = json!({"id": "cus_1", "metadata": {"tenant_id": "Not A Tenant#"}});
        let e = parse_event(&event("customer.updated", o)).unwrap();
        let EventKind::CustomerUpdated(c) = e.kind else {
            panic!()
        };
        assert!(c.tenant.is_none());
    }

    #[test]
    fn malformed_fields_of_a_handled_type_are_refused() {
        let o = json!({"id": "ch_1", "currency": "euro", "amount": 100});
        assert_eq!(
            code(parse_event(&event("charge.refunded", o))),
            "invalid_event"
        );
        let o = json!({"id": "ch_1", "currency": "eur", "amount": "100"});
        assert_eq!(
            code(parse_event(&event("charge.refunded", o))),
            "invalid_event"
        );
        let o = json!({"id": "in_1", "currency": "eur"});
        assert_eq!(
            code(parse_event(&event("invoice.paid", o))),
            "invalid_event",
            "no created"
        );
    }
}
