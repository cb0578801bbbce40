//! Demo data for `make dev` (and the world every integration test starts from): a tenant, the
//! `demo-contact` form and the blind-index key parameter. Records are written through the shared
//! crate's adapters, so their shape has one definition.

use anyhow::Context;
use aws_sdk_ssm::types::ParameterType;
use base64::Engine;
use rand::RngCore;
use shared_accounts::auth::permissions::Role;
use shared_accounts::dynamo::{login_item_of, tenant_item, user_item};
use shared_accounts::{Mfa, Tenant, User};
use shared_billing::dynamo::{put_plan, put_plan_price};
use shared_billing::{BillingInterval, Entitlements, Plan, PlanPrice, ProviderId};
use shared_core::domain::{
    ConsentDef, Email, FieldDef, FieldKind, FormId, FormRecord, TenantId, TenantRecord,
    TenantStatus, UserId, DEFAULT_HONEYPOT,
};
use shared_leads::dynamo::DynamoFormAdmin;
use shared_leads::ports::FormAdmin;

use crate::bootstrap::LocalClients;
use crate::template::Template;

pub const DEMO_TENANT: &str = "demo-tenant";
pub const DEMO_FORM: &str = "demo-contact";
pub const DEMO_CONSENT_VERSION: &str = "2026-11-01";

pub const DEMO_OWNER_EMAIL: &str = "demo@example.com";

/// The Stripe webhook signing secret of every local stack (`make dev`, tests). Sign a local event
/// with it: `billing_webhook::stripe::signature_header`.
pub const LOCAL_STRIPE_WEBHOOK_SECRET: &str = "whsec_local_dev";

/// Stripe's secret key on every local stack: the billing function sends it, the local stand-in
/// (`crate::stripe_standin`) accepts it and nothing else.
pub const LOCAL_STRIPE_SECRET_KEY: &str = "sk_test_local_standin";

/// A price of a local stack: the plan it sells, per interval, and what the stand-in charges.
#[derive(Debug, Clone, Copy)]
pub struct LocalPrice {
    pub plan: &'static str,
    pub price_id: &'static str,
    pub interval: BillingInterval,
    /// Minor units of `currency`.
    pub unit_amount: i64,
    pub currency: &'static str,
    /// monthly submissions, seats, forms
    pub entitlements: (u32, u32, u32),
}

/// The (fake) Stripe prices of a local stack: `starter` and `pro`, monthly and yearly.
pub const LOCAL_PRICES: &[LocalPrice] = &[
    LocalPrice {
        plan: "starter",
        price_id: "price_starter_local",
        interval: BillingInterval::Month,
        unit_amount: 900,
        currency: "eur",
        entitlements: (5_000, 5, 5),
    },
    LocalPrice {
        plan: "starter",
        price_id: "price_starter_yearly_local",
        interval: BillingInterval::Year,
        unit_amount: 9_000,
        currency: "eur",
        entitlements: (5_000, 5, 5),
    },
    LocalPrice {
        plan: "pro",
        price_id: "price_pro_local",
        interval: BillingInterval::Month,
        unit_amount: 2_900,
        currency: "eur",
        entitlements: (50_000, 20, 50),
    },
    LocalPrice {
        plan: "pro",
        price_id: "price_pro_yearly_local",
        interval: BillingInterval::Year,
        unit_amount: 29_000,
        currency: "eur",
        entitlements: (50_000, 20, 50),
    },
];

/// The plans of a local stack, by the (fake) Stripe prices that sell them.
pub fn local_plans() -> Vec<Plan> {
    LOCAL_PRICES
        .iter()
        .map(|p| Plan {
            provider: "stripe".into(),
            price_id: ProviderId::parse(p.price_id).expect("a valid price id"),
            name: p.plan.into(),
            entitlements: Entitlements {
                monthly_submissions: p.entitlements.0,
                seats: p.entitlements.1,
                forms: p.entitlements.2,
            },
        })
        .collect()
}

/// The price of each local plan per interval (what a checkout asks for).
pub fn local_plan_prices() -> Vec<PlanPrice> {
    LOCAL_PRICES
        .iter()
        .map(|p| PlanPrice {
            plan: p.plan.into(),
            provider: "stripe".into(),
            interval: p.interval,
            price_id: ProviderId::parse(p.price_id).expect("a valid price id"),
        })
        .collect()
}

/// Writes [`local_plans`] and [`local_plan_prices`] into the template's plans table (idempotent).
pub async fn seed_plans(clients: &LocalClients, template: &Template) -> anyhow::Result<()> {
    let table = template
        .table_name("PlansTable")
        .context("template has no PlansTable")?;
    for plan in local_plans() {
        put_plan(&clients.dynamo, table, &plan).await?;
    }
    for price in local_plan_prices() {
        put_plan_price(&clients.dynamo, table, &price).await?;
    }
    Ok(())
}

/// Creates the parameter `name` with `value` unless it exists; `true` when this call created
/// it. Callers racing for one name (tests starting at once, `make dev` beside a test run) all
/// succeed and the parameter keeps the value of the one that created it.
async fn ensure_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    kind: ParameterType,
    value: &str,
) -> anyhow::Result<bool> {
    if ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .is_ok()
    {
        return Ok(false);
    }
    let put = ssm
        .put_parameter()
        .name(name)
        .r#type(kind)
        .value(value)
        .overwrite(false)
        .send()
        .await;
    match put {
        Ok(_) => Ok(true),
        // Created meanwhile: by another caller, or by this very request when its answer was
        // lost and the SDK sent it again (seen on a loaded CI machine). Either way it exists,
        // which is all this function promises.
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_parameter_already_exists()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e).with_context(|| format!("creating SSM parameter {name}")),
    }
}

/// What [`seed_demo`] created, printed by `devstack seed`.
#[derive(Debug, Clone)]
pub struct SeedReport {
    pub tenant_id: String,
    pub form_id: String,
    pub owner_email: String,
    /// Generated at every seed: printed once by `make dev`, stored only as an argon2id hash.
    pub owner_password: String,
}

/// The demo contact form: email (required), name, company, phone, message, and an optional
/// marketing consent.
pub fn demo_form(tenant: &TenantId, form: &FormId, web_origin: &str) -> FormRecord {
    let field = |name: &str, kind, required| FieldDef {
        name: name.into(),
        kind,
        required,
        max_len: None,
    };
    FormRecord {
        form_id: form.clone(),
        tenant_id: tenant.clone(),
        name: "Demo contact form".into(),
        enabled: true,
        fields: vec![
            field("email", FieldKind::Email, true),
            field("name", FieldKind::Text, false),
            field("company", FieldKind::Text, false),
            field("phone", FieldKind::Phone, false),
            field("message", FieldKind::LongText, false),
        ],
        consents: vec![ConsentDef {
            key: "marketing".into(),
            version: DEMO_CONSENT_VERSION.into(),
            text: "Yes, send me occasional news about Demo Co. I can unsubscribe at any time."
                .into(),
            required: false,
        }],
        allowed_origins: vec![web_origin.trim_end_matches('/').to_string()],
        redirect_url: format!("{}/thanks.html", web_origin.trim_end_matches('/')),
        honeypot_field: DEFAULT_HONEYPOT.into(),
        daily_cap: None,
        spam: Default::default(),
    }
}

/// Creates the blind-index key parameter with 32 random bytes unless it already exists (a new
/// key would orphan every existing blind index).
pub async fn ensure_blind_index_key(ssm: &aws_sdk_ssm::Client, name: &str) -> anyhow::Result<()> {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    ensure_parameter(ssm, name, ParameterType::SecureString, &key).await?;
    Ok(())
}

/// Creates the access-token key pair of a local stack unless it exists: the private key
/// (SecureString `signing`, read by auth only) and the public keys (String `public`) listing its
/// public key under its key id. Existing parameters are left as they are (a rotation a test or
/// a developer made stays; auth refuses to start if its key is not published), except that a
/// new private key replaces a public-keys parameter left from an earlier one.
pub async fn ensure_token_keys(
    ssm: &aws_sdk_ssm::Client,
    signing: &str,
    public: &str,
) -> anyhow::Result<()> {
    use shared_accounts::auth::jwt::TokenSigner;
    let exists = |name: &str| {
        let request = ssm.get_parameter().name(name).with_decryption(true).send();
        async move { request.await.is_ok() }
    };
    let pair = TokenSigner::generate("local-1")?;
    let new_pair = if ensure_parameter(
        ssm,
        signing,
        ParameterType::SecureString,
        &pair.private_json,
    )
    .await?
    {
        Some(TokenSigner::from_json(&pair.private_json)?)
    } else {
        None
    };
    if new_pair.is_some() || !exists(public).await {
        let signer = match new_pair {
            Some(s) => s,
            None => TokenSigner::from_json(&shared_core::secrets::parameter(ssm, signing).await?)?,
        };
        let value = serde_json::json!({ "keys": { signer.kid(): signer.public_key() } });
        ssm.put_parameter()
            .name(public)
            .r#type(ParameterType::String)
            .value(value.to_string())
            .overwrite(true)
            .send()
            .await
            .with_context(|| format!("creating SSM parameter {public}"))?;
    }
    Ok(())
}

/// The secrets and identities the functions of `template` need in the emulator: the blind-index
/// key, the access-token key pair, the SES sender identity, the Stripe webhook secret
/// ([`LOCAL_STRIPE_WEBHOOK_SECRET`]) and Stripe's secret key ([`LOCAL_STRIPE_SECRET_KEY`]).
pub async fn ensure_secrets(
    clients: &LocalClients,
    ses: &aws_sdk_sesv2::Client,
    template: &Template,
) -> anyhow::Result<()> {
    let intake = template.function_env("lead-intake")?;
    ensure_blind_index_key(
        &clients.ssm,
        intake
            .get("BLIND_INDEX_KEY_PARAMETER")
            .context("lead-intake has no BLIND_INDEX_KEY_PARAMETER")?,
    )
    .await?;
    let auth = template.function_env("auth")?;
    ensure_token_keys(
        &clients.ssm,
        auth.get("JWT_SIGNING_KEY_PARAMETER")
            .context("auth has no JWT_SIGNING_KEY_PARAMETER")?,
        auth.get("JWT_PUBLIC_KEYS_PARAMETER")
            .context("auth has no JWT_PUBLIC_KEYS_PARAMETER")?,
    )
    .await?;
    crate::emulator::ensure_sender_identity(
        ses,
        auth.get("SENDER_EMAIL")
            .context("auth has no SENDER_EMAIL")?,
    )
    .await?;
    let billing = template.function_env("billing-webhook")?;
    ensure_parameter(
        &clients.ssm,
        billing
            .get("STRIPE_WEBHOOK_SECRETS_PARAMETER")
            .context("billing-webhook has no STRIPE_WEBHOOK_SECRETS_PARAMETER")?,
        ParameterType::SecureString,
        LOCAL_STRIPE_WEBHOOK_SECRET,
    )
    .await?;
    ensure_parameter(
        &clients.ssm,
        billing
            .get("STRIPE_SECRET_KEY_PARAMETER")
            .context("billing-webhook has no STRIPE_SECRET_KEY_PARAMETER")?,
        ParameterType::SecureString,
        LOCAL_STRIPE_SECRET_KEY,
    )
    .await?;
    Ok(())
}

/// A random password for the demo owner (printed by `make dev`).
fn demo_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Writes a tenant and one form through the shared adapter.
pub async fn put_tenant_and_form(
    clients: &LocalClients,
    template: &Template,
    tenant: &TenantRecord,
    form: &FormRecord,
) -> anyhow::Result<()> {
    let table = template
        .table_name("TenantsTable")
        .context("template has no TenantsTable")?;
    let admin = DynamoFormAdmin::new(clients.dynamo.clone(), table);
    admin.put_tenant(tenant).await?;
    admin.put_form(form).await?;
    Ok(())
}

pub async fn seed_demo(
    clients: &LocalClients,
    endpoint: &str,
    template: &Template,
    web_origin: &str,
) -> anyhow::Result<SeedReport> {
    let ses = crate::emulator::sesv2_client(endpoint);
    ensure_secrets(clients, &ses, template).await?;
    let param = template.function_env("lead-intake")?["BLIND_INDEX_KEY_PARAMETER"].clone();
    let key = shared_core::secrets::blind_index_key(&clients.ssm, &param).await?;

    let tenant = TenantId::parse(DEMO_TENANT)?;
    let form = FormId::parse(DEMO_FORM)?;
    let owner = UserId::parse("demo-owner")?;
    let email = Email::parse(DEMO_OWNER_EMAIL).map_err(|e| anyhow::anyhow!(e))?;
    let password = demo_password();
    let now = time::OffsetDateTime::now_utc();
    let tenants_table = template
        .table_name("TenantsTable")
        .context("template has no TenantsTable")?;
    let user = User {
        user_id: owner.clone(),
        tenant_id: tenant.clone(),
        email: email.clone(),
        name: "Demo Owner".into(),
        phone: None,
        role: Role::Owner,
        password_hash: shared_accounts::auth::password::hash_password(&password)?,
        email_verified: true,
        created_at: now,
        mfa: Mfa::default(),
        last_login: None,
        // The demo owner accepted the versions the template puts in force.
        policy: Some(shared_accounts::policy::PolicyAcceptance::both(
            &shared_accounts::policy::PolicyVersions::from_env(
                &shared_core::config::Env::from_pairs(template.function_env("auth")?),
            )?,
            now,
        )),
    };
    let record = Tenant {
        tenant_id: tenant.clone(),
        business_name: "Demo Co".into(),
        status: TenantStatus::Active,
        owner_user_id: owner.clone(),
        created_at: now,
        closed_at: None,
        erase_after: None,
    };
    for item in [
        tenant_item(&record),
        user_item(&user),
        login_item_of(&key.email(&email), &user),
    ] {
        clients
            .dynamo
            .put_item()
            .table_name(tenants_table)
            .set_item(Some(item))
            .send()
            .await
            .context("seeding the demo account")?;
    }
    DynamoFormAdmin::new(clients.dynamo.clone(), tenants_table)
        .put_form(&demo_form(&tenant, &form, web_origin))
        .await?;
    seed_plans(clients, template).await?;
    Ok(SeedReport {
        tenant_id: tenant.to_string(),
        form_id: form.to_string(),
        owner_email: DEMO_OWNER_EMAIL.into(),
        owner_password: password,
    })
}
