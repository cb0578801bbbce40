//! Unit tests of the lead-intake use case over the in-memory store, at a fixed time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::json;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::fakes::MemoryStore;
use crate::ports::{FormAdmin, IntakeSnapshot, NewLead};
use shared_core::clock::{FixedClock, SequentialIds};
use shared_core::domain::{
    ConsentDef, ConsentRecord, ContactDetails, Email, FieldDef, FieldKind, Phone, TenantRecord,
    DEFAULT_HONEYPOT,
};

// ---------------------------------------------------------------------------------------------
// The world every test starts from
// ---------------------------------------------------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);
const TENANT: &str = "acme";
const FORM: &str = "contact";
const ORIGIN: &str = "https://acme.example";
const IP: &str = "203.0.113.10";
const CONSENT_VERSION: &str = "2026-11-01";

fn tenant() -> TenantId {
    TenantId::parse(TENANT).unwrap()
}

fn form_id() -> FormId {
    FormId::parse(FORM).unwrap()
}

fn key() -> BlindIndexKey {
    BlindIndexKey::new(vec![7; 32]).unwrap()
}

fn bidx_of(email: &str) -> String {
    key().email(&Email::parse(email).unwrap())
}

/// The lead id a person with this email gets in the test tenant.
fn lead_id_of(email: &str) -> LeadId {
    let k = key();
    k.lead_id(&tenant(), &k.email(&Email::parse(email).unwrap()))
}

fn field(name: &str, kind: FieldKind, required: bool) -> FieldDef {
    FieldDef {
        name: name.into(),
        kind,
        required,
        max_len: None,
    }
}

/// A realistic contact form: email (required), name, company, phone, message; a marketing
/// consent and a partners consent, both optional.
fn contact_form() -> FormRecord {
    FormRecord {
        form_id: form_id(),
        tenant_id: tenant(),
        name: "Contact us".into(),
        enabled: true,
        fields: vec![
            field("email", FieldKind::Email, true),
            field("name", FieldKind::Text, false),
            field("company", FieldKind::Text, false),
            field("phone", FieldKind::Phone, false),
            field("message", FieldKind::LongText, false),
        ],
        consents: vec![
            ConsentDef {
                key: "marketing".into(),
                version: CONSENT_VERSION.into(),
                text: "Send me occasional news.".into(),
                required: false,
            },
            ConsentDef {
                key: "partners".into(),
                version: "2025-06-01".into(),
                text: "Share my details with partners.".into(),
                required: false,
            },
        ],
        allowed_origins: vec![ORIGIN.into()],
        redirect_url: format!("{ORIGIN}/thanks"),
        honeypot_field: DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: Default::default(),
    }
}

async fn seed(store: &MemoryStore, form: &FormRecord, tenant_status: Option<TenantStatus>) {
    if let Some(status) = tenant_status {
        store
            .put_tenant(&TenantRecord {
                tenant_id: form.tenant_id.clone(),
                status,
            })
            .await
            .unwrap();
    }
    store.put_form(form).await.unwrap();
}

/// Gives tests access to the in-memory state behind any store they run intake over.
trait Memory {
    fn mem(&self) -> &MemoryStore;
}

impl Memory for MemoryStore {
    fn mem(&self) -> &MemoryStore {
        self
    }
}

struct Harness<S = MemoryStore> {
    intake: Intake<S>,
    clock: Arc<FixedClock>,
}

impl Harness<MemoryStore> {
    /// An active tenant with the contact form, default settings.
    async fn new() -> Self {
        Self::with(
            contact_form(),
            Some(TenantStatus::Active),
            IntakeSettings::default(),
        )
        .await
    }

    async fn with_settings(settings: IntakeSettings) -> Self {
        Self::with(contact_form(), Some(TenantStatus::Active), settings).await
    }

    async fn with(
        form: FormRecord,
        tenant_status: Option<TenantStatus>,
        settings: IntakeSettings,
    ) -> Self {
        let store = MemoryStore::new();
        seed(&store, &form, tenant_status).await;
        Self::over(store, settings)
    }
}

impl<S: IntakeStore + Memory> Harness<S> {
    fn over(store: S, settings: IntakeSettings) -> Self {
        let clock = Arc::new(FixedClock::new(T0));
        let intake = Intake::new(
            store,
            clock.clone(),
            SequentialIds::default(),
            key(),
            settings,
        );
        Self { intake, clock }
    }

    fn mem(&self) -> &MemoryStore {
        self.intake.store().mem()
    }

    async fn submit_full(&self, post: &Post) -> IntakeResponse {
        let body = RawSubmission::from_json(post.body.as_bytes()).expect("test bodies are JSON");
        self.intake
            .submit(IntakeRequest {
                form_id: FormId::parse(post.form).unwrap(),
                body,
                raw_body: post.body.as_bytes(),
                origin: post.origin,
                source_ip: post.ip,
                user_agent: post.user_agent,
                referer_header: post.referer,
                idempotency_key: post.idempotency_key,
            })
            .await
    }

    async fn submit(&self, post: &Post) -> Result<Outcome, AppError> {
        self.submit_full(post).await.result
    }

    /// Submits and expects acceptance; returns (lead id, submission id, new lead).
    async fn accept(&self, post: &Post) -> (LeadId, SubmissionId, bool) {
        match self.submit(post).await {
            Ok(Outcome::Accepted {
                lead_id,
                submission_id,
                new_lead,
            }) => (lead_id, submission_id, new_lead),
            other => panic!("expected Accepted, got {other:?}"),
        }
    }

    fn lead_count(&self) -> usize {
        self.mem().lock().leads.len()
    }

    fn submission_count(&self) -> usize {
        self.mem().lock().submissions.len()
    }

    fn submissions(&self) -> Vec<NewSubmission> {
        self.mem().lock().submissions.values().cloned().collect()
    }

    fn only_submission(&self) -> NewSubmission {
        let subs = self.submissions();
        assert_eq!(subs.len(), 1, "expected exactly one stored submission");
        subs.into_iter().next().unwrap()
    }

    fn nothing_stored(&self) -> bool {
        let st = self.mem().lock();
        st.leads.is_empty() && st.submissions.is_empty() && st.idempotency.is_empty()
    }
}

/// One submission as the HTTP layer would hand it over.
#[derive(Debug, Clone)]
struct Post {
    form: &'static str,
    body: String,
    origin: Option<&'static str>,
    ip: Option<&'static str>,
    user_agent: Option<&'static str>,
    referer: Option<&'static str>,
    idempotency_key: Option<&'static str>,
}

impl Post {
    fn json(body: serde_json::Value) -> Self {
        Self {
            form: FORM,
            body: body.to_string(),
            origin: Some(ORIGIN),
            ip: Some(IP),
            user_agent: Some("TestBrowser/1.0"),
            referer: None,
            idempotency_key: None,
        }
    }

    /// A valid submission from the person with this email.
    fn from(email: &str) -> Self {
        Self::json(json!({ "email": email, "name": "Ana Pop", "message": "Call me" }))
    }

    fn form(mut self, form: &'static str) -> Self {
        self.form = form;
        self
    }
    fn origin(mut self, origin: Option<&'static str>) -> Self {
        self.origin = origin;
        self
    }
    fn ip(mut self, ip: Option<&'static str>) -> Self {
        self.ip = ip;
        self
    }
    fn referer(mut self, referer: &'static str) -> Self {
        self.referer = Some(referer);
        self
    }
    fn idempotency_key(mut self, key: &'static str) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

fn forbidden_code(r: Result<Outcome, AppError>) -> &'static str {
    match r {
        Err(AppError::Forbidden { code, .. }) => code,
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

fn rate_limited_after(r: Result<Outcome, AppError>) -> u64 {
    match r {
        Err(AppError::RateLimited { retry_after_secs }) => retry_after_secs,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

fn limits(per_ip: u32, per_form: u32) -> IntakeSettings {
    IntakeSettings {
        rate_limit_per_ip_per_minute: per_ip,
        rate_limit_per_form_per_minute: per_form,
        ..IntakeSettings::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Leads and deduplication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_first_submission_creates_a_lead_keyed_by_tenant_and_email() {
    let h = Harness::new().await;

    let (lead, sub, new_lead) = h.accept(&Post::from("ana.pop@example.com")).await;

    assert!(new_lead);
    assert_eq!(lead, lead_id_of("ana.pop@example.com"));
    assert!(sub.as_str().starts_with("sb-"));
    let st = h.mem().lock();
    let (stored, count) = &st.leads[&(tenant(), lead.clone())];
    assert_eq!(*count, 1);
    assert_eq!(
        stored.contact.email.as_ref().unwrap().as_str(),
        "ana.pop@example.com"
    );
    assert_eq!(stored.contact.name.as_deref(), Some("Ana Pop"));
    assert_eq!(stored.source_form, form_id());
    assert_eq!(stored.created_at, T0);
    let key = (tenant(), lead, sub.as_str().to_string());
    let submission = &st.submissions[&key];
    assert_eq!(submission.fields["email"], "ana.pop@example.com");
    assert_eq!(submission.fields["message"], "Call me");
    assert_eq!(submission.received_at, T0);
}

#[tokio::test]
async fn the_same_email_in_another_case_lands_on_the_same_lead() {
    let h = Harness::new().await;

    let (first_lead, first_sub, first_new) = h.accept(&Post::from("ana.pop@example.com")).await;
    let (second_lead, second_sub, second_new) =
        h.accept(&Post::from("  ANA.Pop@Example.COM ")).await;

    assert!(first_new);
    assert!(
        !second_new,
        "the second submission attaches to the existing lead"
    );
    assert_eq!(first_lead, second_lead);
    assert_ne!(first_sub, second_sub);
    assert_eq!(h.lead_count(), 1);
    assert_eq!(h.submission_count(), 2);
    assert_eq!(h.mem().lock().leads[&(tenant(), first_lead)].1, 2);
}

#[tokio::test]
async fn different_people_get_different_leads() {
    let h = Harness::new().await;

    let (a, _, _) = h.accept(&Post::from("ana@example.com")).await;
    let (b, _, _) = h.accept(&Post::from("ion@example.com")).await;

    assert_ne!(a, b);
    assert_eq!(h.lead_count(), 2);
}

#[tokio::test]
async fn a_phone_alone_identifies_the_lead_when_the_form_does_not_require_email() {
    let mut form = contact_form();
    form.fields[0].required = false;
    let h = Harness::with(form, Some(TenantStatus::Active), IntakeSettings::default()).await;
    let post = Post::json(json!({ "phone": "+40 712 345 678" }));

    let (first, _, _) = h.accept(&post).await;
    let (second, _, new_lead) = h
        .accept(&Post::json(json!({ "phone": "0040712345678" })))
        .await;

    let k = key();
    let phone_bidx = k.phone(&Phone::parse("+40712345678").unwrap());
    assert_eq!(first, k.lead_id(&tenant(), &phone_bidx));
    assert_eq!(first, second);
    assert!(!new_lead);
}

#[tokio::test]
async fn a_form_without_contact_fields_makes_one_lead_per_submission() {
    let mut form = contact_form();
    form.fields = vec![field("message", FieldKind::LongText, true)];
    let h = Harness::with(form, Some(TenantStatus::Active), IntakeSettings::default()).await;
    let post = Post::json(json!({ "message": "Anonymous feedback" }));

    let (a, _, new_a) = h.accept(&post).await;
    let (b, _, new_b) = h.accept(&post).await;

    assert_ne!(a, b);
    assert!(new_a && new_b);
    assert_eq!(h.lead_count(), 2);
}

// ---------------------------------------------------------------------------------------------
// Discarded submissions: honeypot and suppression
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_filled_honeypot_is_discarded_and_nothing_is_stored() {
    let h = Harness::new().await;
    let post = Post::json(json!({ "email": "bot@example.com", "_gotcha": "http://spam" }));

    let outcome = h.submit(&post).await.unwrap();

    assert!(matches!(
        outcome,
        Outcome::Discarded {
            reason: DiscardReason::Honeypot,
            ..
        }
    ));
    assert_eq!(outcome.ids().0, &lead_id_of("bot@example.com"));
    assert!(h.nothing_stored());
    assert!(!h.mem().calls().contains(&"commit"));
}

#[tokio::test]
async fn a_filled_honeypot_is_discarded_even_when_the_fields_are_invalid() {
    // A bot must not learn the form's rules from validation errors.
    let h = Harness::new().await;
    let post = Post::json(json!({ "email": "not an email", "junk": "x", "_gotcha": "1" }));

    let outcome = h.submit(&post).await.unwrap();

    assert!(matches!(
        outcome,
        Outcome::Discarded {
            reason: DiscardReason::Honeypot,
            ..
        }
    ));
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn a_blank_honeypot_is_ignored() {
    let h = Harness::new().await;
    let post = Post::json(json!({ "email": "ana@example.com", "_gotcha": "  " }));

    h.accept(&post).await;

    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn a_suppressed_email_is_discarded_with_the_lead_id_a_real_lead_would_get() {
    let h = Harness::new().await;
    let email = Email::parse("erased@example.com").unwrap();
    h.mem().suppress(&tenant(), &key().email(&email));

    let outcome = h.submit(&Post::from("Erased@Example.com")).await.unwrap();

    let Outcome::Discarded {
        lead_id,
        submission_id,
        reason,
    } = outcome
    else {
        panic!("expected Discarded, got {outcome:?}")
    };
    assert_eq!(reason, DiscardReason::Suppressed);
    assert!(submission_id.as_str().starts_with("sb-"));
    assert!(h.nothing_stored());

    // The same person in a tenant that never erased them gets exactly that lead id.
    let fresh = Harness::new().await;
    let (real_lead, _, _) = fresh.accept(&Post::from("erased@example.com")).await;
    assert_eq!(lead_id, real_lead);
}

#[tokio::test]
async fn a_suppressed_phone_is_discarded_too() {
    let h = Harness::new().await;
    h.mem().suppress(
        &tenant(),
        &key().phone(&Phone::parse("+40712345678").unwrap()),
    );
    let post = Post::json(json!({ "email": "new@example.com", "phone": "+40 712 345 678" }));

    let outcome = h.submit(&post).await.unwrap();

    assert!(matches!(
        outcome,
        Outcome::Discarded {
            reason: DiscardReason::Suppressed,
            ..
        }
    ));
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn suppression_is_per_tenant() {
    let h = Harness::new().await;
    let other = TenantId::parse("other-tenant").unwrap();
    h.mem().suppress(
        &other,
        &key().email(&Email::parse("ana@example.com").unwrap()),
    );

    h.accept(&Post::from("ana@example.com")).await;

    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn a_suppressed_email_is_rate_limited_like_any_other() {
    let h = Harness::with_settings(limits(1, 100)).await;
    h.mem().suppress(
        &tenant(),
        &key().email(&Email::parse("erased@example.com").unwrap()),
    );
    h.accept(&Post::from("someone@example.com")).await;

    let not_suppressed = h.submit(&Post::from("other@example.com")).await;
    let suppressed = h.submit(&Post::from("erased@example.com")).await;

    rate_limited_after(not_suppressed);
    assert!(
        matches!(suppressed, Err(AppError::RateLimited { .. })),
        "a suppressed email must get the same answer as any other, got {suppressed:?}"
    );
}

#[tokio::test]
async fn a_retry_of_a_suppressed_submission_answers_like_a_retry_of_a_real_one() {
    let post = Post::from("erased@example.com").idempotency_key("key-1");

    let real = Harness::new().await;
    let first = real.submit(&post).await.unwrap();
    let retry = real.submit(&post).await.unwrap();
    assert!(matches!(retry, Outcome::Replayed { .. }));
    assert_eq!(first.ids(), retry.ids());

    let erased = Harness::new().await;
    erased.mem().suppress(
        &tenant(),
        &key().email(&Email::parse("erased@example.com").unwrap()),
    );
    let first = erased.submit(&post).await.unwrap();
    let retry = erased.submit(&post).await.unwrap();
    assert!(matches!(retry, Outcome::Replayed { .. }), "got {retry:?}");
    assert_eq!(first.ids(), retry.ids());
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_per_ip_limit_refuses_the_third_submission_in_a_minute() {
    let h = Harness::with_settings(limits(2, 100)).await;

    h.accept(&Post::from("a@example.com")).await;
    h.accept(&Post::from("b@example.com")).await;
    let retry_after = rate_limited_after(h.submit(&Post::from("c@example.com")).await);

    assert!(
        (1..=60).contains(&retry_after),
        "retry_after = {retry_after}"
    );
    assert_eq!(h.submission_count(), 2);
    // Another address is not limited by this one's count.
    h.accept(&Post::from("d@example.com").ip(Some("198.51.100.7")))
        .await;
}

#[tokio::test]
async fn the_per_form_limit_counts_every_ip() {
    let h = Harness::with_settings(limits(100, 3)).await;

    h.accept(&Post::from("a@example.com").ip(Some("198.51.100.1")))
        .await;
    h.accept(&Post::from("b@example.com").ip(Some("198.51.100.2")))
        .await;
    h.accept(&Post::from("c@example.com").ip(None)).await;
    let retry_after = rate_limited_after(
        h.submit(&Post::from("d@example.com").ip(Some("198.51.100.4")))
            .await,
    );

    assert!((1..=60).contains(&retry_after));
    assert_eq!(h.submission_count(), 3);
}

#[tokio::test]
async fn a_new_minute_window_accepts_again() {
    let h = Harness::with_settings(limits(2, 3)).await;
    h.accept(&Post::from("a@example.com")).await;
    h.accept(&Post::from("b@example.com")).await;
    rate_limited_after(h.submit(&Post::from("c@example.com")).await);

    h.clock.advance(Duration::seconds(60));

    h.accept(&Post::from("c@example.com")).await;
    assert_eq!(h.submission_count(), 3);
}

#[tokio::test]
async fn retry_after_counts_down_to_the_next_window() {
    let h = Harness::with_settings(limits(1, 100)).await;
    h.clock.set(datetime!(2026-11-29 12:00:45 UTC));
    h.accept(&Post::from("a@example.com")).await;

    let retry_after = rate_limited_after(h.submit(&Post::from("b@example.com")).await);

    assert_eq!(retry_after, 15);
}

#[tokio::test]
async fn requests_without_a_source_ip_only_count_against_the_form_limit() {
    let h = Harness::with_settings(limits(1, 100)).await;

    for i in 0..3 {
        h.accept(&Post::json(json!({ "email": format!("p{i}@example.com") })).ip(None))
            .await;
    }
    assert_eq!(h.submission_count(), 3);
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_first_ids() {
    let h = Harness::new().await;
    let post = Post::from("ana@example.com").idempotency_key("key-1");

    let (lead, sub, _) = h.accept(&post).await;
    let replay = h.submit(&post).await.unwrap();

    assert_eq!(
        replay,
        Outcome::Replayed {
            lead_id: lead,
            submission_id: sub
        }
    );
    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn a_replay_does_not_count_against_the_rate_limit() {
    let h = Harness::with_settings(limits(1, 100)).await;
    let post = Post::from("ana@example.com").idempotency_key("key-1");
    h.accept(&post).await;

    for _ in 0..3 {
        assert!(matches!(
            h.submit(&post).await,
            Ok(Outcome::Replayed { .. })
        ));
    }
}

#[tokio::test]
async fn the_same_idempotency_key_with_a_different_body_is_refused() {
    let h = Harness::new().await;
    h.accept(&Post::from("ana@example.com").idempotency_key("key-1"))
        .await;

    let err = h
        .submit(&Post::from("ion@example.com").idempotency_key("key-1"))
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            AppError::Unprocessable {
                code: "idempotency_key_reused",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), 422);
    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn different_idempotency_keys_are_different_requests() {
    let h = Harness::new().await;

    let (_, a, _) = h
        .accept(&Post::from("ana@example.com").idempotency_key("key-1"))
        .await;
    let (_, b, _) = h
        .accept(&Post::from("ana@example.com").idempotency_key("key-2"))
        .await;

    assert_ne!(a, b);
    assert_eq!(h.submission_count(), 2);
}

#[tokio::test]
async fn an_expired_idempotency_record_does_not_replay() {
    let h = Harness::new().await;
    let post = Post::from("ana@example.com").idempotency_key("key-1");
    let (lead, first_sub, _) = h.accept(&post).await;

    h.clock
        .advance(IntakeSettings::default().idempotency_ttl + Duration::seconds(1));
    let (same_lead, second_sub, new_lead) = h.accept(&post).await;

    assert_eq!(lead, same_lead);
    assert!(!new_lead);
    assert_ne!(first_sub, second_sub, "a new submission, not a replay");
    assert_eq!(h.submission_count(), 2);
    // The key now replays the second submission.
    assert_eq!(
        h.submit(&post).await.unwrap(),
        Outcome::Replayed {
            lead_id: lead,
            submission_id: second_sub
        }
    );
}

#[tokio::test]
async fn the_idempotency_record_is_stored_only_when_a_key_is_sent() {
    let h = Harness::new().await;

    h.accept(&Post::from("ana@example.com")).await;
    assert!(h.mem().lock().idempotency.is_empty());

    h.accept(&Post::from("ana@example.com").idempotency_key("k"))
        .await;
    let st = h.mem().lock();
    let record = st.idempotency.values().next().expect("one record");
    assert_eq!(
        record.expires_at,
        T0 + IntakeSettings::default().idempotency_ttl
    );
    assert_ne!(record.key_hash, "k", "the client's key is stored hashed");
}

// ---------------------------------------------------------------------------------------------
// Refusals about the form, the tenant and the origin
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_form_is_not_found() {
    let h = Harness::new().await;

    let response = h
        .submit_full(&Post::from("ana@example.com").form("no-such-form"))
        .await;

    assert!(matches!(
        response.result,
        Err(AppError::NotFound("form_not_found"))
    ));
    assert!(response.form.is_none());
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn a_disabled_form_is_forbidden() {
    let mut form = contact_form();
    form.enabled = false;
    let h = Harness::with(form, Some(TenantStatus::Active), IntakeSettings::default()).await;

    let r = h.submit(&Post::from("ana@example.com")).await;

    assert_eq!(forbidden_code(r), "form_disabled");
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn an_inactive_or_missing_tenant_is_forbidden() {
    for status in [
        Some(TenantStatus::Closed),
        Some(TenantStatus::Suspended),
        None,
    ] {
        let h = Harness::with(contact_form(), status, IntakeSettings::default()).await;

        let r = h.submit(&Post::from("ana@example.com")).await;

        assert_eq!(forbidden_code(r), "tenant_inactive", "tenant {status:?}");
        assert!(h.nothing_stored());
    }
}

#[tokio::test]
async fn an_origin_the_form_does_not_allow_is_forbidden_and_nothing_is_stored() {
    let h = Harness::new().await;

    let response = h
        .submit_full(&Post::from("ana@example.com").origin(Some("https://evil.example")))
        .await;

    assert_eq!(forbidden_code(response.result), "origin_not_allowed");
    // The HTTP layer still learns the form, to answer CORS correctly.
    let form = response.form.expect("form presentation");
    assert_eq!(form.allowed_origins, vec![ORIGIN.to_string()]);
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn origins_must_match_exactly() {
    let h = Harness::new().await;

    for near_miss in [
        "https://acme.example/",
        "http://acme.example",
        "https://ACME.example",
    ] {
        let r = h
            .submit(&Post::from("ana@example.com").origin(Some(near_miss)))
            .await;
        assert_eq!(forbidden_code(r), "origin_not_allowed", "{near_miss}");
    }
}

#[tokio::test]
async fn a_server_to_server_post_without_origin_is_accepted() {
    let h = Harness::new().await;

    h.accept(&Post::from("ana@example.com").origin(None)).await;

    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn the_form_presentation_comes_back_with_a_success() {
    let h = Harness::new().await;

    let response = h.submit_full(&Post::from("ana@example.com")).await;

    assert!(response.result.is_ok());
    assert_eq!(
        response.form.unwrap().redirect_url,
        format!("{ORIGIN}/thanks")
    );
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_fields_are_reported_per_field_and_nothing_is_stored() {
    let h = Harness::new().await;
    let post = Post::json(json!({
        "email": "not-an-email",
        "phone": "0712",
        "favourite_colour": "blue",
        "consent_marketing": "perhaps",
        "consent_unknown": true,
    }));

    let err = h.submit(&post).await.unwrap_err();

    let AppError::Validation { code, fields, .. } = err else {
        panic!("expected Validation, got {err:?}")
    };
    assert_eq!(code, "invalid_fields");
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "consent_marketing",
            "consent_unknown",
            "email",
            "favourite_colour",
            "phone"
        ]
    );
    assert_eq!(fields["favourite_colour"], "is not a field of this form");
    assert!(
        fields.values().all(|m| !m.contains("not-an-email")),
        "values are never echoed"
    );
    assert!(h.nothing_stored());
}

#[tokio::test]
async fn a_missing_required_email_is_reported() {
    let h = Harness::new().await;

    let err = h
        .submit(&Post::json(json!({ "name": "Ana" })))
        .await
        .unwrap_err();

    let AppError::Validation { fields, .. } = err else {
        panic!("expected Validation, got {err:?}")
    };
    assert_eq!(fields["email"], "is required");
}

#[tokio::test]
async fn invalid_submissions_do_not_use_up_the_rate_limit() {
    let h = Harness::with_settings(limits(1, 1)).await;

    for _ in 0..3 {
        assert!(h
            .submit(&Post::json(json!({ "email": "x" })))
            .await
            .is_err());
    }
    h.accept(&Post::from("ana@example.com")).await;
}

// ---------------------------------------------------------------------------------------------
// What is recorded with a submission
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn consents_are_recorded_with_the_forms_version() {
    let h = Harness::new().await;
    let post = Post::json(json!({
        "email": "ana@example.com",
        "consent_marketing": true,
        "consent_partners": "off",
    }));

    h.accept(&post).await;

    assert_eq!(
        h.only_submission().consents,
        vec![
            ConsentRecord {
                key: "marketing".into(),
                version: CONSENT_VERSION.into(),
                granted: true
            },
            ConsentRecord {
                key: "partners".into(),
                version: "2025-06-01".into(),
                granted: false
            },
        ]
    );
}

#[tokio::test]
async fn a_consent_not_sent_is_recorded_as_not_granted() {
    let h = Harness::new().await;

    h.accept(&Post::from("ana@example.com")).await;

    let consents = h.only_submission().consents;
    assert_eq!(consents.len(), 2);
    assert!(consents.iter().all(|c| !c.granted));
}

#[tokio::test]
async fn technical_data_is_recorded_with_its_removal_date() {
    let h = Harness::new().await;
    let post = Post::json(json!({
        "email": "ana@example.com",
        "_referrer": "https://www.google.com/",
    }))
    .referer("https://acme.example/contact");

    h.accept(&post).await;

    let sub = h.only_submission();
    assert_eq!(
        sub.technical,
        TechnicalData {
            ip: Some(IP.into()),
            user_agent: Some("TestBrowser/1.0".into()),
            referrer: Some("https://www.google.com/".into()),
            page_url: Some("https://acme.example/contact".into()),
        }
    );
    assert_eq!(sub.technical_expires_on, date!(2027 - 02 - 27));
    assert_eq!(sub.technical_expires_on, T0.date() + Duration::days(90));
    assert!(
        !sub.fields.contains_key("_referrer"),
        "machinery keys are not answers"
    );
}

#[tokio::test]
async fn the_page_url_the_script_reports_wins_over_the_referer_header() {
    let h = Harness::new().await;
    let post = Post::json(json!({
        "email": "ana@example.com",
        "_page_url": "https://acme.example/pricing",
    }))
    .referer("https://acme.example/");

    h.accept(&post).await;

    assert_eq!(
        h.only_submission().technical.page_url.as_deref(),
        Some("https://acme.example/pricing")
    );
}

#[tokio::test]
async fn the_retention_period_comes_from_the_settings() {
    let settings = IntakeSettings {
        technical_data_retention_days: 30,
        ..IntakeSettings::default()
    };
    let h = Harness::with_settings(settings).await;

    h.accept(&Post::from("ana@example.com").ip(None)).await;

    let sub = h.only_submission();
    assert_eq!(sub.technical_expires_on, date!(2026 - 12 - 29));
    assert_eq!(sub.technical.ip, None);
}

// ---------------------------------------------------------------------------------------------
// Request shape and the form -> tenant cache
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_forms_tenant_is_read_once_then_each_submission_is_one_read_and_one_write() {
    let h = Harness::new().await;

    h.accept(&Post::from("ana@example.com")).await;
    assert_eq!(h.mem().calls(), vec!["form_tenant", "load", "commit"]);

    h.accept(&Post::from("ion@example.com")).await;
    assert_eq!(
        h.mem().calls(),
        vec!["form_tenant", "load", "commit", "load", "commit"]
    );
}

#[tokio::test]
async fn an_unknown_form_is_not_cached() {
    let h = Harness::new().await;

    for _ in 0..2 {
        let r = h
            .submit(&Post::from("ana@example.com").form("no-such-form"))
            .await;
        assert!(matches!(r, Err(AppError::NotFound(_))));
    }
    assert_eq!(h.mem().calls(), vec!["form_tenant", "form_tenant"]);
}

#[tokio::test]
async fn a_form_deleted_after_caching_is_not_found_and_forgotten() {
    let h = Harness::new().await;
    h.accept(&Post::from("ana@example.com")).await;

    h.mem().lock().forms.remove(&form_id());
    let r = h.submit(&Post::from("ana@example.com")).await;
    assert!(
        matches!(r, Err(AppError::NotFound("form_not_found"))),
        "{r:?}"
    );

    // Recreated: the tenant is read again.
    seed(h.mem(), &contact_form(), None).await;
    h.accept(&Post::from("ana@example.com")).await;
    assert_eq!(
        h.mem().calls(),
        vec![
            "form_tenant",
            "load",
            "commit",
            "load",
            "form_tenant",
            "load",
            "commit"
        ]
    );
}

#[tokio::test]
async fn the_lookup_carries_every_decision_input() {
    // Checked through the snapshot the fake returns: suppression, lead and rate data all come
    // from the single `load`.
    let h = Harness::with_settings(limits(1, 100)).await;
    h.accept(&Post::from("ana@example.com").idempotency_key("k"))
        .await;
    h.mem().suppress(
        &tenant(),
        &key().email(&Email::parse("ion@example.com").unwrap()),
    );

    let replay = h
        .submit(&Post::from("ana@example.com").idempotency_key("k"))
        .await;
    let suppressed = h.submit(&Post::from("ion@example.com")).await;
    let limited = h.submit(&Post::from("eve@example.com")).await;

    assert!(matches!(replay, Ok(Outcome::Replayed { .. })));
    // Over the per-IP limit, a suppressed person is refused like anyone else.
    assert!(matches!(suppressed, Err(AppError::RateLimited { .. })));
    assert!(matches!(limited, Err(AppError::RateLimited { .. })));
    assert_eq!(
        h.mem().calls(),
        vec!["form_tenant", "load", "commit", "load", "load", "load"]
    );
}

// ---------------------------------------------------------------------------------------------
// Races between the read and the write
// ---------------------------------------------------------------------------------------------

type Hook = Box<dyn FnOnce(&MemoryStore) + Send>;

/// A [`MemoryStore`] that lets a test act between intake's read and its write, as a concurrent
/// request would, and inject commit failures.
#[derive(Default)]
struct Racy {
    mem: MemoryStore,
    after_next_load: Mutex<Option<Hook>>,
    commit_failures: Mutex<VecDeque<CommitError>>,
    /// Commits to apply and then answer with a transient store error (the answer lost).
    lost_answers: Mutex<usize>,
}

impl Racy {
    fn after_next_load(&self, hook: impl FnOnce(&MemoryStore) + Send + 'static) {
        *self.after_next_load.lock().unwrap() = Some(Box::new(hook));
    }

    fn fail_commits(&self, failures: impl IntoIterator<Item = CommitError>) {
        self.commit_failures.lock().unwrap().extend(failures);
    }
}

impl Memory for Racy {
    fn mem(&self) -> &MemoryStore {
        &self.mem
    }
}

impl IntakeStore for Racy {
    async fn form_tenant(&self, form: &FormId) -> anyhow::Result<Option<TenantId>> {
        self.mem.form_tenant(form).await
    }

    async fn form(&self, form: &FormId) -> anyhow::Result<Option<FormRecord>> {
        self.mem.form(form).await
    }

    async fn load(&self, lookup: &IntakeLookup) -> anyhow::Result<IntakeSnapshot> {
        let snapshot = self.mem.load(lookup).await?;
        let hook = self.after_next_load.lock().unwrap().take();
        if let Some(hook) = hook {
            hook(&self.mem);
        }
        Ok(snapshot)
    }

    async fn commit(&self, write: &IntakeWrite) -> Result<(), CommitError> {
        let injected = self.commit_failures.lock().unwrap().pop_front();
        match injected {
            Some(e) => {
                self.mem.calls.lock().unwrap().push("commit");
                Err(e)
            }
            None => {
                let applied = self.mem.commit(write).await;
                let mut lost = self.lost_answers.lock().unwrap();
                if applied.is_ok() && *lost > 0 {
                    *lost -= 1;
                    let meta = aws_smithy_types::error::ErrorMetadata::builder()
                        .code("InternalServerError")
                        .build();
                    return Err(CommitError::Store(anyhow::Error::new(meta)));
                }
                applied
            }
        }
    }

    async fn quarantine(&self, write: &crate::ports::QuarantineWrite) -> Result<(), CommitError> {
        self.mem.quarantine(write).await
    }

    async fn quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        quarantine_id: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<Option<crate::ports::QuarantinedSubmission>> {
        self.mem.quarantined(tenant, form, quarantine_id, now).await
    }

    async fn recent_quarantined(
        &self,
        tenant: &TenantId,
        form: &FormId,
        now: OffsetDateTime,
    ) -> anyhow::Result<u32> {
        self.mem.recent_quarantined(tenant, form, now).await
    }

    async fn idempotency_record(
        &self,
        tenant: &TenantId,
        form: &FormId,
        key_hash: &str,
    ) -> anyhow::Result<Option<IdempotencyRecord>> {
        self.mem.idempotency_record(tenant, form, key_hash).await
    }

    async fn submission_exists(
        &self,
        tenant: &TenantId,
        lead: &LeadId,
        submission: &shared_core::domain::SubmissionId,
    ) -> anyhow::Result<bool> {
        self.mem.submission_exists(tenant, lead, submission).await
    }

    async fn claim_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        count_at_least: u32,
        at: OffsetDateTime,
    ) -> anyhow::Result<bool> {
        self.mem
            .claim_alerts(tenant, month, percents, count_at_least, at)
            .await
    }

    async fn release_alerts(
        &self,
        tenant: &TenantId,
        month: &str,
        percents: &[u8],
        at: OffsetDateTime,
    ) -> anyhow::Result<()> {
        self.mem.release_alerts(tenant, month, percents, at).await
    }
}

async fn racy() -> Harness<Racy> {
    let store = Racy::default();
    seed(&store.mem, &contact_form(), Some(TenantStatus::Active)).await;
    Harness::over(store, IntakeSettings::default())
}

#[tokio::test]
async fn a_lead_erased_between_read_and_write_is_created_again() {
    let h = racy().await;
    let (lead, _, _) = h.accept(&Post::from("ana@example.com")).await;

    h.intake
        .store()
        .after_next_load(|mem| mem.lock().leads.clear());
    let (again, _, new_lead) = h.accept(&Post::from("ana@example.com")).await;

    assert_eq!(again, lead);
    assert!(new_lead, "the erased lead is started afresh");
    assert_eq!(h.lead_count(), 1);
    assert_eq!(h.mem().lock().leads[&(tenant(), lead)].1, 1);
    let calls = h.mem().calls();
    assert_eq!(&calls[3..], ["load", "commit", "commit"]);
}

#[tokio::test]
async fn a_lead_created_by_a_concurrent_request_is_attached_to() {
    let h = racy().await;
    let lead = lead_id_of("ana@example.com");
    let concurrent = NewLead {
        lead_id: lead.clone(),
        contact: ContactDetails::default(),
        email_bidx: Some(bidx_of("ana@example.com")),
        phone_bidx: None,
        source_form: form_id(),
        created_at: T0,
        route: None,
    };
    h.intake.store().after_next_load(move |mem| {
        mem.lock()
            .leads
            .insert((tenant(), concurrent.lead_id.clone()), (concurrent, 1));
    });

    let (attached, _, new_lead) = h.accept(&Post::from("ana@example.com")).await;

    assert_eq!(attached, lead);
    assert!(!new_lead);
    assert_eq!(h.mem().lock().leads[&(tenant(), lead)].1, 2);
    assert_eq!(
        h.mem().calls(),
        vec!["form_tenant", "load", "commit", "commit"]
    );
}

#[tokio::test]
async fn an_idempotency_key_taken_by_a_concurrent_retry_replays_its_answer() {
    let h = racy().await;
    let post = Post::from("ana@example.com").idempotency_key("key-1");
    let k = key();
    let record = IdempotencyRecord {
        key_hash: k.idempotency_key(&tenant(), "key-1"),
        body_hash: k.body(post.body.as_bytes()),
        lead_id: lead_id_of("ana@example.com"),
        submission_id: SubmissionId::parse("sb-the-other-one").unwrap(),
        expires_at: T0 + Duration::hours(24),
    };
    let stored = record.clone();
    h.intake.store().after_next_load(move |mem| {
        mem.lock()
            .idempotency
            .insert((tenant(), form_id(), stored.key_hash.clone()), stored);
    });

    let outcome = h.submit(&post).await.unwrap();

    assert_eq!(
        outcome,
        Outcome::Replayed {
            lead_id: record.lead_id,
            submission_id: record.submission_id
        }
    );
    assert_eq!(h.submission_count(), 0);
    assert_eq!(
        h.mem().calls(),
        vec!["form_tenant", "load", "commit", "idempotency_record"]
    );
}

#[tokio::test]
async fn an_idempotency_key_taken_concurrently_with_another_body_is_refused() {
    let h = racy().await;
    let k = key();
    let other = IdempotencyRecord {
        key_hash: k.idempotency_key(&tenant(), "key-1"),
        body_hash: k.body(b"some other body"),
        lead_id: lead_id_of("ion@example.com"),
        submission_id: SubmissionId::parse("sb-the-other-one").unwrap(),
        expires_at: T0 + Duration::hours(24),
    };
    h.intake.store().after_next_load(move |mem| {
        mem.lock()
            .idempotency
            .insert((tenant(), form_id(), other.key_hash.clone()), other);
    });

    let r = h
        .submit(&Post::from("ana@example.com").idempotency_key("key-1"))
        .await;

    assert!(
        matches!(
            r,
            Err(AppError::Unprocessable {
                code: "idempotency_key_reused",
                ..
            })
        ),
        "{r:?}"
    );
}

/// An injected refusal, not a race: the concurrent requests are in `tests/lead_intake.rs`
/// (`concurrent_submissions_over_the_ip_window_are_refused_by_its_condition`).
#[tokio::test]
async fn a_commit_refused_by_the_rate_window_condition_is_answered_429() {
    let h = racy().await;
    h.intake.store().fail_commits([CommitError::RateLimited]);

    let retry_after = rate_limited_after(h.submit(&Post::from("ana@example.com")).await);

    assert_eq!(retry_after, 60);
    assert_eq!(h.submission_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn transaction_conflicts_are_retried() {
    let h = racy().await;
    h.intake.store().fail_commits([
        CommitError::Conflict,
        CommitError::Conflict,
        CommitError::Conflict,
    ]);

    h.accept(&Post::from("ana@example.com")).await;

    assert_eq!(h.submission_count(), 1);
    assert_eq!(
        h.mem().calls(),
        vec![
            "form_tenant",
            "load",
            "commit",
            "commit",
            "commit",
            "commit"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn persistent_conflicts_are_a_503_to_send_again() {
    let h = racy().await;
    h.intake
        .store()
        .fail_commits((0..MAX_ATTEMPTS).map(|_| CommitError::Conflict));

    let r = h.submit(&Post::from("ana@example.com")).await;

    assert!(
        matches!(
            r,
            Err(AppError::Unavailable {
                retry_after_secs: 1
            })
        ),
        "{r:?}"
    );
    assert_eq!(h.submission_count(), 0);
}

/// The transaction landed but its answer was lost and the store gave up: the submission is
/// there, so the answer is an acceptance (a 503 would have the form post it a second time).
#[tokio::test]
async fn a_commit_that_landed_with_its_answer_lost_is_accepted_once() {
    let h = racy().await;
    *h.intake.store().lost_answers.lock().unwrap() = 1;

    let r = h.submit(&Post::from("ana@example.com")).await;

    assert!(matches!(r, Ok(Outcome::Accepted { .. })), "{r:?}");
    assert_eq!(h.submission_count(), 1);
}

#[tokio::test]
async fn a_store_failure_on_commit_is_an_internal_error() {
    let h = racy().await;
    h.intake
        .store()
        .fail_commits([CommitError::Store(anyhow::anyhow!("throttled"))]);

    let r = h.submit(&Post::from("ana@example.com")).await;

    let err = r.unwrap_err();
    assert_eq!(err.status(), 500);
    assert!(!err.public_message().contains("throttled"));
}

// ---------------------------------------------------------------------------------------------
// Entitlements: the monthly quota and the subscription's standing
// ---------------------------------------------------------------------------------------------

fn with_free_quota(n: u32) -> IntakeSettings {
    let mut s = limits(100, 1000);
    s.billing.free_tier.monthly_submissions = n;
    s
}

fn payment_required(r: Result<Outcome, AppError>) -> &'static str {
    match r {
        Err(e @ AppError::PaymentRequired { .. }) => {
            assert_eq!(e.status(), 402);
            e.code()
        }
        other => panic!("expected 402, got {other:?}"),
    }
}

fn usage(h: &Harness) -> u32 {
    h.mem()
        .lock()
        .usage
        .get(&(tenant(), "2026-11".to_string()))
        .copied()
        .unwrap_or(0)
}

fn subscription(status: shared_billing::SubscriptionStatus) -> shared_billing::BillingState {
    shared_billing::BillingState {
        status: Some(status),
        plan: Some("pro".into()),
        entitlements: Some(shared_billing::Entitlements {
            monthly_submissions: 5,
            seats: 10,
            forms: 10,
        }),
        current_period_end: Some(T0 - Duration::days(10)),
        status_since: Some(T0 - Duration::days(10)),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_free_tier_quota_counts_accepted_and_suppressed_submissions() {
    let h = Harness::with_settings(with_free_quota(3)).await;
    h.mem().suppress(
        &tenant(),
        &key().email(&Email::parse("erased@example.com").unwrap()),
    );
    h.accept(&Post::from("ana@example.com")).await;
    assert!(matches!(
        h.submit(&Post::from("erased@example.com")).await,
        Ok(Outcome::Discarded { .. })
    ));
    h.accept(&Post::from("ion@example.com")).await;
    assert_eq!(usage(&h), 3);

    let r = h.submit(&Post::from("eve@example.com")).await;
    assert_eq!(payment_required(r), "quota_exceeded");
    // A suppressed person over the quota is refused like anyone else.
    let r = h.submit(&Post::from("erased@example.com")).await;
    assert_eq!(payment_required(r), "quota_exceeded");
    assert_eq!(h.submission_count(), 2);
    assert_eq!(usage(&h), 3);
}

#[tokio::test]
async fn honeypot_invalid_and_replayed_submissions_do_not_count() {
    let h = Harness::with_settings(with_free_quota(2)).await;
    let post = Post::from("ana@example.com").idempotency_key("k1");
    h.accept(&post).await;
    assert!(matches!(
        h.submit(&post).await,
        Ok(Outcome::Replayed { .. })
    ));
    let bot = Post::json(json!({"email": "bot@example.com", "_gotcha": "x"}));
    assert!(matches!(
        h.submit(&bot).await,
        Ok(Outcome::Discarded { .. })
    ));
    let invalid = Post::json(json!({"email": "nope"}));
    assert!(h.submit(&invalid).await.is_err());
    assert_eq!(usage(&h), 1);
    h.accept(&Post::from("ion@example.com")).await;
    assert_eq!(usage(&h), 2);
}

#[tokio::test]
async fn a_new_month_starts_a_new_count() {
    let h = Harness::with_settings(with_free_quota(1)).await;
    h.accept(&Post::from("ana@example.com")).await;
    assert_eq!(
        payment_required(h.submit(&Post::from("ion@example.com")).await),
        "quota_exceeded"
    );
    h.clock.set(datetime!(2026-12-01 00:00 UTC));
    h.accept(&Post::from("ion@example.com")).await;
    let st = h.mem().lock();
    assert_eq!(st.usage[&(tenant(), "2026-12".to_string())], 1);
}

#[tokio::test]
async fn a_plan_gives_its_quota() {
    let h = Harness::with_settings(with_free_quota(1)).await;
    h.mem().lock().billing.insert(
        tenant(),
        subscription(shared_billing::SubscriptionStatus::Active),
    );
    for i in 0..5 {
        h.accept(&Post::from(&format!("p{i}@example.com"))).await;
    }
    assert_eq!(
        payment_required(h.submit(&Post::from("p5@example.com")).await),
        "quota_exceeded"
    );
}

#[tokio::test]
async fn a_canceled_subscription_stops_submissions_after_its_grace_period() {
    use shared_billing::SubscriptionStatus::Canceled;
    let h = Harness::with_settings(with_free_quota(100)).await;
    // Paid period ended 10 days ago, grace 7 days: inactive.
    h.mem()
        .lock()
        .billing
        .insert(tenant(), subscription(Canceled));
    assert_eq!(
        payment_required(h.submit(&Post::from("ana@example.com")).await),
        "subscription_inactive"
    );
    assert!(h.nothing_stored());
    // Ended 6 days ago: still in its grace period, on its plan.
    let mut recent = subscription(Canceled);
    recent.current_period_end = Some(T0 - Duration::days(6));
    h.mem().lock().billing.insert(tenant(), recent);
    h.accept(&Post::from("ana@example.com")).await;
}

#[tokio::test]
async fn the_rate_limit_answers_before_the_quota() {
    let mut settings = with_free_quota(1);
    settings.rate_limit_per_ip_per_minute = 1;
    let h = Harness::with_settings(settings).await;
    h.accept(&Post::from("ana@example.com")).await;
    rate_limited_after(h.submit(&Post::from("ion@example.com")).await);
}

/// An injected refusal, not a race: the concurrent requests are in `tests/lead_intake.rs`
/// (`concurrent_submissions_over_the_quota_are_refused_by_the_counter_condition`).
#[tokio::test]
async fn a_commit_refused_by_the_quota_condition_is_answered_402() {
    let h = racy().await;
    // The counter reached the quota between the read and the write (the default quota: 100).
    h.intake
        .store()
        .fail_commits([CommitError::UsageMoved(crate::ports::UsageState {
            month_count: 100,
            ..Default::default()
        })]);
    let r = h.submit(&Post::from("ana@example.com")).await;
    assert_eq!(payment_required(r), "quota_exceeded");
    assert_eq!(h.submission_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Daily caps and quota alerts
// ---------------------------------------------------------------------------------------------

#[test]
fn usage_ranges_leave_each_thresholds_last_count_alone() {
    // Quota 10: 80 % is the 8th submission, 100 % the 10th.
    assert_eq!(alert_threshold(10, 80), 8);
    assert_eq!(alert_threshold(3, 80), 3, "rounded up");
    assert_eq!(alert_threshold(1, 80), 1);
    assert_eq!(usage_range(0, 10), ((0, 6), vec![]));
    assert_eq!(usage_range(6, 10), ((0, 6), vec![]));
    assert_eq!(usage_range(7, 10), ((7, 7), vec![80]));
    assert_eq!(usage_range(8, 10), ((8, 8), vec![]));
    assert_eq!(usage_range(9, 10), ((9, 9), vec![100]));
    // Both thresholds on one count: one range, both alerts.
    assert_eq!(usage_range(0, 3), ((0, 1), vec![]));
    assert_eq!(usage_range(2, 3), ((2, 2), vec![80, 100]));
    assert_eq!(usage_range(0, 1), ((0, 0), vec![80, 100]));
    assert_eq!(usage_range(500, 10_000), ((0, 7998), vec![]));
    assert_eq!(usage_range(8000, 10_000), ((8000, 9998), vec![]));
}

/// Records the alerts intake sends; the first `fail` sends fail.
#[derive(Default)]
struct Alerts {
    sent: Mutex<Vec<QuotaAlert>>,
    fail: Mutex<usize>,
}

impl QuotaAlerts for Alerts {
    fn send<'a>(&'a self, alert: &'a QuotaAlert) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut fail = self.fail.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                anyhow::bail!("SES is down");
            }
            self.sent.lock().unwrap().push(alert.clone());
            Ok(())
        })
    }
}

impl Alerts {
    fn sent(&self) -> Vec<(u8, u32)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.percent, a.used))
            .collect()
    }
}

fn alerted<S: IntakeStore + Memory>(h: Harness<S>, alerts: &Arc<Alerts>) -> Harness<S> {
    Harness {
        intake: h.intake.with_alerts(alerts.clone()),
        clock: h.clock,
    }
}

fn capped_form(cap: u32) -> FormRecord {
    FormRecord {
        daily_cap: Some(cap),
        ..contact_form()
    }
}

#[tokio::test]
async fn a_forms_daily_cap_refuses_the_rest_of_its_day_and_leaves_other_forms_alone() {
    let h = Harness::with(
        capped_form(2),
        Some(TenantStatus::Active),
        limits(100, 1000),
    )
    .await;
    let other = FormRecord {
        form_id: FormId::parse("other").unwrap(),
        daily_cap: None,
        ..contact_form()
    };
    h.mem().put_form(&other).await.unwrap();

    h.accept(&Post::from("a@example.com")).await;
    h.accept(&Post::from("b@example.com")).await;
    // T0 is noon UTC: retry at midnight.
    let wait = rate_limited_after(h.submit(&Post::from("c@example.com")).await);
    assert_eq!(wait, 12 * 3600);
    assert_eq!(h.submission_count(), 2);
    // The refused one is not counted against the month either.
    assert_eq!(usage(&h), 2);
    h.accept(&Post::from("c@example.com").form("other")).await;

    // A new day (UTC) starts a new count.
    h.clock.set(datetime!(2026-11-30 00:00 UTC));
    h.accept(&Post::from("c@example.com")).await;
    h.accept(&Post::from("d@example.com")).await;
    rate_limited_after(h.submit(&Post::from("e@example.com")).await);
    let st = h.mem().lock();
    assert_eq!(
        st.form_days[&(tenant(), "2026-11".to_string(), form_id())],
        ("2026-11-30".to_string(), 2)
    );
}

#[tokio::test]
async fn a_daily_cap_reached_between_read_and_write_is_refused_by_the_counter() {
    let store = Racy::default();
    seed(&store.mem, &capped_form(1), Some(TenantStatus::Active)).await;
    let h = Harness::over(store, limits(100, 1000));
    // Another submission takes the day's only place after this one read the counter.
    h.intake.store().after_next_load(|mem| {
        mem.lock().form_days.insert(
            (tenant(), "2026-11".into(), form_id()),
            ("2026-11-29".into(), 1),
        );
    });
    rate_limited_after(h.submit(&Post::from("a@example.com")).await);
    assert_eq!(h.submission_count(), 0);
}

#[tokio::test]
async fn quota_alerts_go_out_once_at_80_and_100_percent() {
    let alerts = Arc::new(Alerts::default());
    let h = alerted(Harness::with_settings(with_free_quota(10)).await, &alerts);
    for i in 0..10 {
        h.accept(&Post::from(&format!("p{i}@example.com"))).await;
        let expected: &[(u8, u32)] = match i {
            0..=6 => &[],
            7 | 8 => &[(80, 8)],
            _ => &[(80, 8), (100, 10)],
        };
        assert_eq!(alerts.sent(), expected, "after submission {}", i + 1);
    }
    for i in 10..13 {
        let r = h.submit(&Post::from(&format!("p{i}@example.com"))).await;
        assert_eq!(payment_required(r), "quota_exceeded");
    }
    assert_eq!(
        alerts.sent().len(),
        2,
        "refused submissions alert nobody again"
    );
    let a = &alerts.sent.lock().unwrap()[1];
    assert_eq!(
        (a.tenant.as_str(), a.month.as_str(), a.quota),
        (TENANT, "2026-11", 10)
    );
    // Marked on the counter; no claim needed (the crossing commit marked them).
    let st = h.mem().lock();
    let marks: Vec<u8> = st.alerts[&(tenant(), "2026-11".to_string())]
        .keys()
        .copied()
        .collect();
    assert_eq!(marks, [80, 100]);
    assert!(!h.mem().calls().contains(&"claim_alerts"));
}

#[tokio::test]
async fn a_counter_that_moved_is_followed_and_the_crossing_is_still_one() {
    let store = Racy::default();
    seed(&store.mem, &contact_form(), Some(TenantStatus::Active)).await;
    let alerts = Arc::new(Alerts::default());
    let h = alerted(Harness::over(store, with_free_quota(10)), &alerts);
    // Seven others counted between this submission's read (0) and its write.
    h.intake.store().after_next_load(|mem| {
        mem.lock().usage.insert((tenant(), "2026-11".into()), 7);
    });
    h.accept(&Post::from("ana@example.com")).await;
    assert_eq!(h.mem().lock().usage[&(tenant(), "2026-11".to_string())], 8);
    assert_eq!(alerts.sent(), [(80, 8)], "it was the 8th: it crossed 80 %");
    let calls = h.mem().calls();
    assert_eq!(&calls[calls.len() - 2..], ["commit", "commit"]);
}

#[tokio::test]
async fn an_alert_that_could_not_be_sent_is_sent_by_a_later_submission() {
    let alerts = Arc::new(Alerts::default());
    *alerts.fail.lock().unwrap() = 1;
    let h = alerted(Harness::with_settings(with_free_quota(10)).await, &alerts);
    for i in 0..8 {
        h.accept(&Post::from(&format!("p{i}@example.com"))).await;
    }
    assert!(alerts.sent().is_empty(), "the send failed");
    assert!(
        !h.mem().lock().alerts[&(tenant(), "2026-11".to_string())].contains_key(&80),
        "and its mark was released"
    );
    h.accept(&Post::from("p8@example.com")).await;
    assert_eq!(alerts.sent(), [(80, 8)]);
    h.accept(&Post::from("p9@example.com")).await;
    assert_eq!(alerts.sent(), [(80, 8), (100, 10)]);
    for i in 10..12 {
        let r = h.submit(&Post::from(&format!("p{i}@example.com"))).await;
        assert_eq!(payment_required(r), "quota_exceeded");
    }
    assert_eq!(alerts.sent().len(), 2);
}

#[tokio::test]
async fn a_month_over_its_thresholds_without_marks_alerts_once() {
    // A quota lowered under the month's count (a plan ended): one email, for 100 %.
    let alerts = Arc::new(Alerts::default());
    let h = alerted(Harness::with_settings(with_free_quota(5)).await, &alerts);
    h.mem()
        .lock()
        .usage
        .insert((tenant(), "2026-11".into()), 40);
    for _ in 0..3 {
        let r = h.submit(&Post::from("late@example.com")).await;
        assert_eq!(payment_required(r), "quota_exceeded");
    }
    assert_eq!(alerts.sent(), [(100, 40)]);
}

#[tokio::test]
async fn without_alerts_nothing_is_marked() {
    let h = Harness::with_settings(with_free_quota(2)).await;
    h.accept(&Post::from("a@example.com")).await;
    h.accept(&Post::from("b@example.com")).await;
    assert!(h.mem().lock().alerts.is_empty());
}

/// Edits the lead's address in the fake the way the workspace's edit does: the lead's routing
/// key changes, the old address's route goes, the new address's route names the lead.
fn move_lead_address(mem: &MemoryStore, lead: &LeadId, from: &str, to: &str) {
    let mut st = mem.lock();
    let entry = st.leads.get_mut(&(tenant(), lead.clone())).unwrap();
    entry.0.email_bidx = Some(bidx_of(to));
    st.routes.remove(&(tenant(), bidx_of(from)));
    st.routes.insert((tenant(), bidx_of(to)), lead.clone());
}

#[tokio::test]
async fn after_an_edit_moves_a_lead_to_another_address_each_address_reaches_only_its_own_lead() {
    let h = Harness::new().await;
    let (lead, _, _) = h.accept(&Post::from("ana@example.com")).await;
    move_lead_address(h.mem(), &lead, "ana@example.com", "bea@example.com");

    // Bea's submissions go to the lead that is now hers, by its route item.
    let (beas, _, new_lead) = h.accept(&Post::from("bea@example.com")).await;
    assert_eq!(beas, lead);
    assert!(!new_lead);

    // Ana's next submission must not land in Bea's lead (whose id Ana's address derives).
    let (anas, _, new_lead) = h.accept(&Post::from("ana@example.com")).await;
    assert_ne!(
        anas, lead,
        "Ana's submission reached the lead that now says Bea"
    );
    assert!(new_lead);
    // ... and her later ones find her new lead by its route.
    let (again, _, new_lead) = h.accept(&Post::from("ana@example.com")).await;
    assert_eq!(again, anas);
    assert!(!new_lead);
    assert_eq!(h.lead_count(), 2);

    // Every submission carries its own address's blind index.
    let st = h.mem().lock();
    for ((_, l, _), sub) in &st.submissions {
        let expected = if *l == lead && sub.email_bidx == Some(bidx_of("ana@example.com")) {
            // Ana's first submission, made before the edit, stays Ana's by its own index.
            bidx_of("ana@example.com")
        } else if *l == lead {
            bidx_of("bea@example.com")
        } else {
            bidx_of("ana@example.com")
        };
        assert_eq!(sub.email_bidx.as_deref(), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn an_edit_racing_a_submission_never_attaches_it_to_the_moved_lead() {
    let h = racy().await;
    let (lead, _, _) = h.accept(&Post::from("ana@example.com")).await;
    // Between intake's read (which saw Ana's lead) and its write, the lead moves to Bea.
    let moved = lead.clone();
    h.intake.store().after_next_load(move |mem| {
        move_lead_address(mem, &moved, "ana@example.com", "bea@example.com");
    });

    let (anas, _, new_lead) = h.accept(&Post::from("ana@example.com")).await;

    assert_ne!(anas, lead, "the racing submission reached the moved lead");
    assert!(new_lead);
    let st = h.mem().lock();
    let on_moved: Vec<_> = st
        .submissions
        .iter()
        .filter(|((_, l, _), _)| *l == lead)
        .collect();
    assert_eq!(
        on_moved.len(),
        1,
        "only the submission made before the edit"
    );
}

// ---------------------------------------------------------------------------------------------
// Spam defence: proof of work, time trap, rules, quarantine and release
// ---------------------------------------------------------------------------------------------

impl Harness<MemoryStore> {
    /// A challenge of the test form issued now, solved as the embed snippet would.
    async fn solved_challenge(&self) -> String {
        let (_, c) = self.intake.challenge(&form_id(), None).await.unwrap();
        spam::pow::solve(&c).unwrap().encode()
    }

    fn quarantined(&self) -> Vec<QuarantinedSubmission> {
        self.mem().lock().quarantine.values().cloned().collect()
    }

    fn month_count(&self) -> u32 {
        let st = self.mem().lock();
        st.usage
            .get(&(tenant(), usage_month(self.clock.now())))
            .copied()
            .unwrap_or(0)
    }
}

impl Post {
    fn with_pow(email: &str, pow: &str) -> Self {
        Self::json(json!({
            "email": email, "name": "Ana Pop", "message": "Call me",
            "consent_marketing": true, "_altcha": pow,
        }))
    }
}

fn quarantined_reasons(r: Result<Outcome, AppError>) -> Vec<Reason> {
    match r {
        Ok(Outcome::Quarantined { reasons, .. }) => reasons,
        other => panic!("expected Quarantined, got {other:?}"),
    }
}

#[tokio::test]
async fn a_person_who_solved_the_challenge_and_took_their_time_becomes_a_lead_and_uses_it_up() {
    let h = Harness::new().await;
    let pow = h.solved_challenge().await;
    h.clock.advance(Duration::seconds(20));
    h.accept(&Post::with_pow("ana@example.com", &pow)).await;
    assert_eq!(h.mem().lock().used_challenges.len(), 1, "marked used");
    assert!(h.quarantined().is_empty());
    assert_eq!(h.month_count(), 1);
}

#[tokio::test]
async fn an_instant_post_is_quarantined_answered_like_a_lead_and_counts_nothing() {
    let h = Harness::new().await;
    let pow = h.solved_challenge().await;
    h.clock.advance(Duration::seconds(1));
    let r = h.submit(&Post::with_pow("bot@example.com", &pow)).await;
    let Ok(Outcome::Quarantined {
        lead_id,
        submission_id,
        reasons,
        ..
    }) = r
    else {
        panic!("expected Quarantined, got {r:?}")
    };
    assert_eq!(reasons, [Reason::TooFast]);
    // The answer's ids look like an accepted one's: the lead this address would have.
    assert_eq!(lead_id, lead_id_of("bot@example.com"));
    assert!(submission_id.as_str().starts_with("sb-"));
    assert_eq!(
        (h.lead_count(), h.submission_count(), h.month_count()),
        (0, 0, 0)
    );
    let q = h.quarantined();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reasons, ["too_fast"]);
    assert_eq!(q[0].fields["email"], "bot@example.com");
    assert_eq!(q[0].consents.len(), 2, "consents kept for a release");
    assert_eq!(q[0].expires_at, h.clock.now() + Duration::days(30));
    assert_eq!(h.mem().lock().used_challenges.len(), 1, "used up too");
}

#[tokio::test]
async fn a_replayed_challenge_is_refused_as_proof_and_quarantined() {
    let h = Harness::new().await;
    let pow = h.solved_challenge().await;
    h.clock.advance(Duration::seconds(30));
    h.accept(&Post::with_pow("ana@example.com", &pow)).await;
    let again = h.submit(&Post::with_pow("bot@example.com", &pow)).await;
    assert_eq!(quarantined_reasons(again), [Reason::PowReplayed]);
    assert_eq!((h.lead_count(), h.month_count()), (1, 1));
    // A replay that is quarantined anyway (too many links) is marked replayed too.
    let h2 = Harness::new().await;
    let pow = h2.solved_challenge().await;
    h2.clock.advance(Duration::seconds(30));
    h2.accept(&Post::with_pow("ana@example.com", &pow)).await;
    let links = Post::json(json!({
        "email": "bot@example.com",
        "message": "http://a.example http://b.example http://c.example",
        "_altcha": pow,
    }));
    assert_eq!(
        quarantined_reasons(h2.submit(&links).await),
        [Reason::TooManyLinks, Reason::PowReplayed]
    );
}

#[tokio::test]
async fn a_plain_html_post_without_the_challenge_is_accepted_unless_the_rules_say_otherwise() {
    let h = Harness::new().await;
    h.accept(&Post::from("ana@example.com")).await;
    let disposable = Post::from("x@mailinator.com");
    assert_eq!(
        quarantined_reasons(h.submit(&disposable).await),
        [Reason::PowMissing, Reason::DisposableEmail]
    );
}

#[tokio::test]
async fn a_suppressed_persons_spam_is_discarded_as_before_not_quarantined() {
    let h = Harness::new().await;
    h.mem().suppress(&tenant(), &bidx_of("x@mailinator.com"));
    let r = h.submit(&Post::from("x@mailinator.com")).await;
    assert!(
        matches!(
            r,
            Ok(Outcome::Discarded {
                reason: DiscardReason::Suppressed,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(h.quarantined().is_empty());
}

#[tokio::test]
async fn a_quarantined_post_retried_under_its_key_gets_the_same_answer() {
    let h = Harness::new().await;
    let post = Post::from("x@yopmail.com").idempotency_key("k-1");
    let first = h.submit(&post).await.unwrap();
    let retry = h.submit(&post).await.unwrap();
    assert_eq!(first.ids(), retry.ids());
    assert!(matches!(retry, Outcome::Replayed { .. }));
    assert_eq!(h.quarantined().len(), 1);
}

#[tokio::test]
async fn a_released_submission_becomes_the_lead_it_would_have_been_once() {
    let h = Harness::new().await;
    let r = h
        .submit(&Post::with_pow("x@yopmail.com", "not-a-solution"))
        .await;
    assert_eq!(
        quarantined_reasons(r),
        [Reason::PowInvalid, Reason::DisposableEmail]
    );
    let q = h.quarantined().remove(0);
    h.clock.advance(Duration::hours(5));
    let released = h
        .intake
        .release(&tenant(), &form_id(), &q.quarantine_id)
        .await
        .unwrap();
    let Outcome::Accepted {
        lead_id, new_lead, ..
    } = released.clone()
    else {
        panic!("{released:?}")
    };
    assert!(new_lead);
    assert_eq!(lead_id, lead_id_of("x@yopmail.com"));
    let sub = h.only_submission();
    assert_eq!(sub.received_at, T0, "as if accepted when it arrived");
    assert_eq!(sub.consents.len(), 2);
    assert!(sub
        .consents
        .iter()
        .any(|c| c.key == "marketing" && c.granted));
    assert_eq!(h.month_count(), 1, "counted when released");
    let q = h.quarantined().remove(0);
    assert!(q.fields.is_empty(), "its data moved to the lead");
    assert!(q.released.is_some());
    // Again: the same lead, nothing new.
    let again = h
        .intake
        .release(&tenant(), &form_id(), &q.quarantine_id)
        .await
        .unwrap();
    assert_eq!(again.ids(), released.ids());
    assert!(matches!(again, Outcome::Replayed { .. }));
    assert_eq!((h.submission_count(), h.month_count()), (1, 1));
}

#[tokio::test]
async fn another_tenant_cannot_release_a_quarantined_submission() {
    let h = Harness::new().await;
    h.submit(&Post::from("x@yopmail.com")).await.unwrap();
    let q = h.quarantined().remove(0);
    let other = TenantId::parse("other-tenant").unwrap();
    let r = h.intake.release(&other, &form_id(), &q.quarantine_id).await;
    assert!(
        matches!(r, Err(AppError::NotFound("quarantine_not_found"))),
        "{r:?}"
    );
    assert_eq!(h.lead_count(), 0);
}

#[tokio::test]
async fn a_challenge_is_issued_for_an_enabled_form_only_with_its_difficulty() {
    let mut form = contact_form();
    form.spam.pow_max_number = 12_345;
    let h = Harness::with(
        form.clone(),
        Some(TenantStatus::Active),
        IntakeSettings::default(),
    )
    .await;
    let (_, c) = h.intake.challenge(&form_id(), None).await.unwrap();
    assert_eq!(c.maxnumber, 12_345);
    form.enabled = false;
    h.mem().put_form(&form).await.unwrap();
    let r = h.intake.challenge(&form_id(), None).await;
    assert_eq!(r.unwrap_err().code(), "form_disabled");
    let r = h
        .intake
        .challenge(&FormId::parse("nope").unwrap(), None)
        .await;
    assert_eq!(r.unwrap_err().code(), "form_not_found");
}

#[tokio::test]
async fn quarantined_posts_count_against_the_minutes_rate_limit_but_not_the_quota() {
    let h = Harness::with_settings(limits(2, 100)).await;
    for n in 0..2 {
        let post = Post::from(if n == 0 {
            "a@yopmail.com"
        } else {
            "b@yopmail.com"
        });
        quarantined_reasons(h.submit(&post).await);
    }
    // A third from the same IP this minute: refused like anyone's, nothing stored.
    let r = h.submit(&Post::from("c@yopmail.com")).await;
    assert!(rate_limited_after(r) > 0);
    assert_eq!(h.quarantined().len(), 2);
    assert_eq!(h.month_count(), 0, "not counted in the quota");
    // The IP's person is refused too this minute; the next minute they get through.
    assert!(rate_limited_after(h.submit(&Post::from("ana@example.com")).await) > 0);
    h.clock.advance(Duration::minutes(1));
    h.accept(&Post::from("ana@example.com")).await;
}
