//! The spam defence's figures (issue 19): a labelled, generated set of submissions (real-looking
//! people, with and without JavaScript; the bot patterns the issue names: instant posts,
//! replayed challenges, link-stuffed text, disposable domains) goes through lead intake over the
//! in-memory store, with the demo form's default spam settings, and the quarantine's precision
//! and recall are printed per pattern. Goal: at least 99 % of the bots quarantined, no person.
//!
//! Deterministic: a fixed seed and a fixed clock that moves as the generated visitors do. The
//! proof of work's difficulty is lowered to its minimum (1,000) so a debug build solves every
//! challenge in seconds; difficulty changes the cost to a bot, not what the layers decide.
//!
//! `cargo run -p bench --bin spam` (debug is fine); `make bench` runs it with the others.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use shared_billing::BillingPolicy;
use shared_core::blind_index::BlindIndexKey;
use shared_core::clock::{FixedClock, SequentialIds};
use shared_core::domain::{
    ConsentDef, FieldDef, FieldKind, FormId, FormRecord, RawSubmission, SpamSettings, TenantId,
    TenantRecord, TenantStatus, DEFAULT_HONEYPOT,
};
use shared_leads::fakes::MemoryStore;
use shared_leads::intake::{Intake, IntakeRequest, IntakeSettings, Outcome};
use shared_leads::ports::FormAdmin;
use shared_leads::spam::pow;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const HUMANS: usize = 2000;
const BOTS_PER_PATTERN: usize = 500;
const START: OffsetDateTime = datetime!(2026-12-01 08:00 UTC);

/// xorshift64*: enough randomness for generated data, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const FIRST: &[&str] = &[
    "Ana", "Mihai", "Ioana", "Andrei", "Maria", "John", "Emma", "Lukas", "Sofia", "Jan", "Chloé",
    "Mateo", "Olga", "Kenji", "Aisha", "Pedro", "Zoë", "Björn", "Élodie", "Radu",
];
const LAST: &[&str] = &[
    "Popescu",
    "Ionescu",
    "Smith",
    "Müller",
    "Rossi",
    "García",
    "Novak",
    "Dubois",
    "Tanaka",
    "Kowalski",
    "O'Brien",
    "Nguyen",
    "Larsen",
    "Silva",
    "Georgescu",
];
const PROVIDERS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "proton.me",
    "icloud.com",
    "posteo.de",
    "gmx.de",
    "web.de",
    "orange.fr",
    "libero.it",
    "acme-industries.com",
    "dental-care.ro",
    "studio-lumen.eu",
];
const ASKS: &[&str] = &[
    "Could you send me a quote for 20 licences?",
    "We would like a demo next week; Tuesday afternoon works best.",
    "Is there a discount for non-profits?",
    "I found a typo on your pricing page.",
    "Please call me back about the enterprise plan.",
    "Do you integrate with our CRM? Our current setup is described at https://acme-industries.com/it",
    "Our order #4411 has not arrived yet.",
    "Hello! I'd like to know more about your services for small clinics.",
    "Can we meet at the fair? Details: https://fair.example/booth and https://fair.example/map",
    "Bună ziua, aș dori o ofertă pentru 3 utilizatori.",
];
const SPAM: &[&str] = &[
    "Best SEO services",
    "cheap watches",
    "crypto profits guaranteed",
    "casino bonus",
    "backlinks for your site",
    "buy followers",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A person with JavaScript: the snippet solves the challenge while they type.
    PersonScript,
    /// A person whose browser runs no script: a plain HTML post.
    PersonPlain,
    /// A bot that fetches and solves the challenge and posts within 2 s.
    BotInstant,
    /// A bot replaying a solution captured from a person's post.
    BotReplay,
    /// A plain post with its free text stuffed with links.
    BotLinks,
    /// A plain or scripted post from a disposable-mail address.
    BotDisposable,
    /// Not one of the patterns, reported apart: a plain post with clean text from an
    /// ordinary address. Only `pow_required` catches it (it would turn plain forms away).
    BotPlainClean,
}

impl Kind {
    fn is_bot(self) -> bool {
        !matches!(self, Kind::PersonScript | Kind::PersonPlain)
    }
    fn label(self) -> &'static str {
        match self {
            Kind::PersonScript => "person, with JavaScript",
            Kind::PersonPlain => "person, plain HTML form",
            Kind::BotInstant => "bot: instant post",
            Kind::BotReplay => "bot: replayed challenge",
            Kind::BotLinks => "bot: link-stuffed text",
            Kind::BotDisposable => "bot: disposable domain",
            Kind::BotPlainClean => "bot: plain clean post (apart)",
        }
    }
}

fn form() -> FormRecord {
    let field = |name: &str, kind, required| FieldDef {
        name: name.into(),
        kind,
        required,
        max_len: None,
    };
    FormRecord {
        form_id: FormId::parse("demo-contact").unwrap(),
        tenant_id: TenantId::parse("demo-tenant").unwrap(),
        name: "Contact us".into(),
        enabled: true,
        fields: vec![
            field("email", FieldKind::Email, true),
            field("name", FieldKind::Text, false),
            field("company", FieldKind::Text, false),
            field("message", FieldKind::LongText, false),
        ],
        consents: vec![ConsentDef {
            key: "marketing".into(),
            version: "v1".into(),
            text: "News and offers".into(),
            required: false,
        }],
        allowed_origins: vec!["https://www.example.com".into()],
        redirect_url: "https://www.example.com/thanks".into(),
        honeypot_field: DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: SpamSettings {
            pow_max_number: 1000,
            ..SpamSettings::default()
        },
    }
}

struct Bench {
    intake: Intake<MemoryStore>,
    clock: Arc<FixedClock>,
    form: FormId,
    now: OffsetDateTime,
    /// Solutions people posted, for the replaying bots.
    captured: Vec<String>,
    ip: u32,
}

impl Bench {
    async fn solution(&mut self) -> String {
        self.clock.set(self.now);
        let (_, c) = self
            .intake
            .challenge(&self.form, None)
            .await
            .expect("a challenge");
        pow::solve(&c).expect("solvable").encode()
    }

    /// Moves the clock on by `secs` and posts `body`: quarantined or not.
    async fn post(&mut self, secs: i64, body: serde_json::Value) -> Result<bool, String> {
        self.now += Duration::seconds(secs);
        self.clock.set(self.now);
        self.ip += 1;
        let ip = format!("198.51.{}.{}", (self.ip / 250) % 250, self.ip % 250 + 1);
        let raw = body.to_string();
        let response = self
            .intake
            .submit(IntakeRequest {
                form_id: self.form.clone(),
                body: RawSubmission::from_json(raw.as_bytes()).map_err(|e| e.to_string())?,
                raw_body: raw.as_bytes(),
                origin: Some("https://www.example.com"),
                source_ip: Some(&ip),
                user_agent: Some("Mozilla/5.0"),
                referer_header: None,
                idempotency_key: None,
            })
            .await;
        match response.result {
            Ok(Outcome::Quarantined { .. }) => Ok(true),
            Ok(Outcome::Accepted { .. } | Outcome::Replayed { .. }) => Ok(false),
            other => Err(format!("{other:?}")),
        }
    }
}

fn person(rng: &mut Rng, n: usize) -> serde_json::Value {
    let first = rng.pick(FIRST).to_string();
    let last = rng.pick(LAST).to_string();
    let local: String = format!("{first}.{last}{n}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>()
        .to_lowercase();
    json!({
        "email": format!("{local}@{}", rng.pick(PROVIDERS)),
        "name": format!("{first} {last}"),
        "message": rng.pick(ASKS),
        "consent_marketing": rng.chance(40),
    })
}

fn disposable_domains() -> Vec<&'static str> {
    include_str!("../../../shared/leads/data/disposable_email_domains.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let form = form();
    let store = MemoryStore::new();
    store
        .put_tenant(&TenantRecord {
            tenant_id: form.tenant_id.clone(),
            status: TenantStatus::Active,
        })
        .await?;
    store.put_form(&form).await?;
    let clock = Arc::new(FixedClock::new(START));
    let mut billing = BillingPolicy::default();
    billing.free_tier.monthly_submissions = 1_000_000;
    let intake = Intake::new(
        store,
        clock.clone(),
        SequentialIds::default(),
        BlindIndexKey::new(vec![42; 32]).expect("a key"),
        IntakeSettings {
            rate_limit_per_ip_per_minute: 1_000_000,
            rate_limit_per_form_per_minute: 1_000_000,
            billing,
            ..IntakeSettings::default()
        },
    );
    let mut b = Bench {
        intake,
        clock,
        form: form.form_id.clone(),
        now: START,
        captured: vec![],
        ip: 0,
    };
    let mut rng = Rng(0x5eed_1919_2026_1203);
    let disposable = disposable_domains();

    // The generated traffic, in arrival order: people first among each slice, so the replaying
    // bots have captured solutions to replay.
    let mut plan: Vec<Kind> = Vec::new();
    for i in 0..HUMANS {
        plan.push(if i % 10 < 7 {
            Kind::PersonScript
        } else {
            Kind::PersonPlain
        });
    }
    for kind in [
        Kind::BotInstant,
        Kind::BotReplay,
        Kind::BotLinks,
        Kind::BotDisposable,
        Kind::BotPlainClean,
    ] {
        plan.extend(std::iter::repeat_n(kind, BOTS_PER_PATTERN));
    }
    // Interleave deterministically (a Fisher-Yates shuffle), keeping a head of people.
    let head = 200;
    for i in (head + 1..plan.len()).rev() {
        let j = head + rng.below(i - head + 1);
        plan.swap(i, j);
    }

    // kind -> (count, quarantined, errors)
    let mut tally: BTreeMap<Kind, (usize, usize, usize)> = BTreeMap::new();
    for (n, kind) in plan.iter().copied().enumerate() {
        let gap = 5 + rng.below(120) as i64;
        b.now += Duration::seconds(gap);
        let result = match kind {
            Kind::PersonScript => {
                let solution = b.solution().await;
                b.captured.push(solution.clone());
                let mut body = person(&mut rng, n);
                body["_altcha"] = json!(solution);
                // People take 8 s to 5 min to fill in a contact form.
                b.post(8 + rng.below(292) as i64, body).await
            }
            Kind::PersonPlain => {
                let body = person(&mut rng, n);
                b.post(8 + rng.below(292) as i64, body).await
            }
            Kind::BotInstant => {
                let solution = b.solution().await;
                let mut body = person(&mut rng, n);
                body["_altcha"] = json!(solution);
                body["message"] = json!(rng.pick(SPAM));
                b.post(rng.below(3) as i64, body).await
            }
            Kind::BotReplay => {
                let captured = rng.pick(&b.captured).clone();
                let mut body = person(&mut rng, n);
                body["_altcha"] = json!(captured);
                b.post(1 + rng.below(60) as i64, body).await
            }
            Kind::BotLinks => {
                let mut body = person(&mut rng, n);
                let links: Vec<String> = (0..3 + rng.below(12))
                    .map(|i| format!("https://spam{}.example/p{i}", rng.below(999)))
                    .collect();
                body["message"] = json!(format!("{} {}", rng.pick(SPAM), links.join(" ")));
                b.post(rng.below(30) as i64, body).await
            }
            Kind::BotDisposable => {
                let mut body = person(&mut rng, n);
                body["email"] = json!(format!("user{n}@{}", rng.pick(&disposable)));
                if rng.chance(50) {
                    // Half of them run the script and take their time.
                    let solution = b.solution().await;
                    body["_altcha"] = json!(solution);
                    b.post(10 + rng.below(50) as i64, body).await
                } else {
                    b.post(rng.below(30) as i64, body).await
                }
            }
            Kind::BotPlainClean => {
                let body = person(&mut rng, n);
                b.post(rng.below(30) as i64, body).await
            }
        };
        let e = tally.entry(kind).or_default();
        e.0 += 1;
        match result {
            Ok(true) => e.1 += 1,
            Ok(false) => {}
            Err(err) => {
                e.2 += 1;
                eprintln!("{} #{n}: {err}", kind.label());
            }
        }
    }

    println!(
        "spam defence: {} generated submissions, demo form defaults (threshold {}, min {} s, {} links), \
         proof of work at difficulty 1,000",
        plan.len(),
        form.spam.threshold,
        form.spam.min_seconds,
        form.spam.max_links
    );
    println!(
        "{:<32} {:>6} {:>12} {:>8}",
        "pattern", "posts", "quarantined", "errors"
    );
    for (kind, (count, q, errors)) in &tally {
        println!(
            "{:<32} {:>6} {:>11.1}% {:>8}",
            kind.label(),
            count,
            100.0 * *q as f64 / *count as f64,
            errors
        );
    }
    let counted = |f: &dyn Fn(Kind) -> bool| {
        tally
            .iter()
            .filter(|(k, _)| f(**k))
            .fold((0, 0), |acc, (_, (c, q, _))| (acc.0 + c, acc.1 + q))
    };
    let (bots, bots_q) = counted(&|k| k.is_bot() && k != Kind::BotPlainClean);
    let (people, people_q) = counted(&|k| !k.is_bot());
    let precision = bots_q as f64 / (bots_q + people_q).max(1) as f64;
    let recall = bots_q as f64 / bots.max(1) as f64;
    println!(
        "the issue's bot patterns: precision {:.2}% ({bots_q} of {} quarantined are bots), \
         recall {:.2}% ({bots_q} of {bots} bots); people quarantined: {people_q} of {people}",
        100.0 * precision,
        bots_q + people_q,
        100.0 * recall
    );
    let goal = recall >= 0.99 && people_q == 0;
    println!(
        "goal (>= 99% of bots quarantined, 0 people): {}",
        if goal { "met" } else { "NOT met" }
    );
    if !goal {
        std::process::exit(1);
    }
    Ok(())
}
