//! Who is calling: the one way an authenticated route learns its user, tenant and role. It
//! reads only the verified credential, so the tenant can never come from the request body or
//! path. An access token (a JWT) is verified with no I/O, so a missing, forged or expired token
//! costs no database call; an API key (`lmk_live_…`, [`super::api_key`]) costs one consistent
//! read of the key, its creator and the tenant ([`ApiKeyStore::for_auth`]).

use lambda_http::http::{header, HeaderMap};
use time::OffsetDateTime;

use super::api_key::{self, Refusal};
use super::jwt::{TokenError, VerifyingKeys};
use super::permissions::{allows, Permission, Role};
use crate::api_keys::ApiKeyStore;
use shared_core::domain::{ApiKeyId, SessionId, TenantId, UserId};
use shared_core::error::AppError;

#[derive(Debug, Clone)]
pub struct Caller {
    /// The member: the token's user, or the creator of the API key (the key acts for them).
    pub user_id: UserId,
    pub tenant_id: TenantId,
    /// The token's role, or the API key's own (at most its creator's).
    pub role: Role,
    pub via: Via,
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An access token of a login session.
    Session {
        session_id: SessionId,
        /// The user's credential epoch the token was issued under (writes compare it with the
        /// user's current one: `AccountStore::require_live_for_write`).
        cred_epoch: i64,
    },
    /// An API key, by its public id (never the secret).
    ApiKey { key_id: ApiKeyId },
}

const TOKEN_REQUIRED: &str = "A valid access token is required.";

fn unauthorized() -> AppError {
    AppError::Unauthorized {
        code: "unauthorized",
        message: TOKEN_REQUIRED,
    }
}

/// Its own code so a client knows to refresh rather than to log in again.
fn expired() -> AppError {
    AppError::Unauthorized {
        code: "token_expired",
        message: TOKEN_REQUIRED,
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive). More than
/// one Authorization header is refused rather than guessed at.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim_start();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// Authenticates the request from its bearer credential: an access token (verified with the
/// public keys, no I/O) or an API key (one consistent read through `api_keys`; its use is
/// recorded in `last_used_at` at most once a minute). Every refusal is `401`; why a key was
/// refused goes to the log with the key's id, never the key.
pub async fn authenticate<S: ApiKeyStore>(
    headers: &HeaderMap,
    keys: &VerifyingKeys,
    api_keys: &S,
    now: OffsetDateTime,
) -> Result<Caller, AppError> {
    let token = bearer_token(headers).ok_or_else(unauthorized)?;
    if api_key::is_api_key(token) {
        return authenticate_key(token, api_keys, now).await;
    }
    let claims = keys
        .verify(token, now.unix_timestamp())
        .map_err(|e| match e {
            TokenError::Expired => expired(),
            _ => unauthorized(),
        })?;
    Ok(Caller {
        user_id: UserId::parse(&claims.sub).map_err(|_| unauthorized())?,
        tenant_id: TenantId::parse(&claims.tid).map_err(|_| unauthorized())?,
        role: Role::parse(&claims.role).ok_or_else(unauthorized)?,
        via: Via::Session {
            session_id: SessionId::parse(&claims.sid).map_err(|_| unauthorized())?,
            cred_epoch: claims.cep,
        },
    })
}

async fn authenticate_key<S: ApiKeyStore>(
    token: &str,
    store: &S,
    now: OffsetDateTime,
) -> Result<Caller, AppError> {
    let presented = api_key::parse(token).ok_or_else(unauthorized)?;
    let found = store.for_auth(&presented).await?;
    let key = match api_key::check(&presented, found, now) {
        Ok(k) => k,
        Err(reason) => {
            // A wrong secret under a real id is someone probing: a warning with the id.
            let log = |r: Refusal| {
                tracing::warn!(
                    event = "api_key_refused",
                    api_key_id = presented.key_id.as_str(),
                    tenant_id = presented.tenant_id.as_str(),
                    reason = r.as_str(),
                    "API key refused"
                )
            };
            log(reason);
            return Err(unauthorized());
        }
    };
    if api_key::should_touch(key.last_used_at, now) {
        // Best effort: a lost write only makes `last_used_at` older than it is.
        if let Err(e) = store.touch(&key.tenant_id, &key.key_id, now).await {
            tracing::warn!(error = %e, api_key_id = key.key_id.as_str(), "last_used_at not recorded");
        }
    }
    tracing::info!(
        event = "api_key_used",
        api_key_id = key.key_id.as_str(),
        tenant_id = key.tenant_id.as_str(),
        "request authenticated with an API key"
    );
    Ok(Caller {
        user_id: key.created_by,
        tenant_id: key.tenant_id,
        role: key.role,
        via: Via::ApiKey { key_id: key.key_id },
    })
}

impl Caller {
    /// Refuses the request unless the caller's role grants `p`.
    pub fn require(&self, p: Permission) -> Result<(), AppError> {
        if allows(self.role, p) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                code: "forbidden",
                message: "Your role does not allow this.",
            })
        }
    }

    /// The login session of the caller; `None` for an API key.
    pub fn session_id(&self) -> Option<&SessionId> {
        match &self.via {
            Via::Session { session_id, .. } => Some(session_id),
            Via::ApiKey { .. } => None,
        }
    }

    /// The API key the caller used, if one.
    pub fn api_key_id(&self) -> Option<&ApiKeyId> {
        match &self.via {
            Via::ApiKey { key_id } => Some(key_id),
            Via::Session { .. } => None,
        }
    }

    /// The session of a route that only a person at a login session may use (their own
    /// password, sessions, second factor, team, API keys): an API key gets `403
    /// api_key_not_allowed`.
    pub fn require_session(&self) -> Result<&SessionId, AppError> {
        self.session_id().ok_or(AppError::Forbidden {
            code: "api_key_not_allowed",
            message: "This route needs a login session; API keys cannot use it.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use lambda_http::http::HeaderValue;

    const NOW: i64 = 1_780_000_000;

    /// `authenticate` with no API keys known, at `now` (Unix seconds).
    fn auth(h: &HeaderMap, k: &VerifyingKeys, now: i64) -> Result<Caller, AppError> {
        block_on(authenticate(
            h,
            k,
            &crate::api_keys::NoApiKeys,
            OffsetDateTime::from_unix_timestamp(now).unwrap(),
        ))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// auth's key pair number `byte`: its signer, and the public keys every function holds.
    struct Keys {
        signer: TokenSigner,
        public: VerifyingKeys,
    }

    impl Keys {
        fn issue(&self, c: &AccessClaims) -> String {
            self.signer.issue(c)
        }
    }

    impl std::ops::Deref for Keys {
        type Target = VerifyingKeys;
        fn deref(&self) -> &VerifyingKeys {
            &self.public
        }
    }

    fn keys(byte: u8) -> Keys {
        let signer = TokenSigner::from_json(&format!(
            r#"{{"kid":"k1","private_key":"{}"}}"#,
            STANDARD.encode([byte; 32])
        ))
        .unwrap();
        let public =
            VerifyingKeys::from_json(&format!(r#"{{"keys":{{"k1":"{}"}}}}"#, signer.public_key()))
                .unwrap();
        Keys { signer, public }
    }

    fn claims(role: &str) -> AccessClaims {
        AccessClaims {
            sub: "u-1".into(),
            tid: "t-acme".into(),
            role: role.into(),
            sid: "s-1".into(),
            cep: 4,
            iat: NOW,
            exp: NOW + ACCESS_TOKEN_TTL_SECS,
            iss: ISSUER.into(),
            typ: "access".into(),
        }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn assert_code(r: Result<Caller, AppError>, code: &str) {
        match r {
            Err(e @ AppError::Unauthorized { .. }) => {
                assert_eq!(e.code(), code);
                assert_eq!(e.status(), 401);
            }
            other => panic!("expected unauthorized {code}, got {other:?}"),
        }
    }

    #[test]
    fn valid_token_gives_the_caller() {
        let k = keys(1);
        let token = k.issue(&claims("member"));
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let c = auth(&headers(&format!("{scheme} {token}")), &k, NOW + 5).unwrap();
            assert_eq!(c.user_id.as_str(), "u-1");
            assert_eq!(c.tenant_id.as_str(), "t-acme");
            assert_eq!(c.role, Role::Member);
            assert_eq!(
                c.via,
                Via::Session {
                    session_id: SessionId::parse("s-1").unwrap(),
                    cred_epoch: 4
                }
            );
            assert!(c.api_key_id().is_none());
        }
    }

    #[test]
    fn missing_header() {
        assert_code(auth(&HeaderMap::new(), &keys(1), NOW), "unauthorized");
    }

    #[test]
    fn wrong_scheme_or_shape() {
        let k = keys(1);
        let token = k.issue(&claims("admin"));
        for value in [
            format!("Basic {token}"),
            format!("Token {token}"),
            format!("Bearer{token}"),
            token.clone(),
            "Bearer".to_string(),
            "Bearer ".to_string(),
            format!("Bearer {token} extra"),
        ] {
            assert_code(auth(&headers(&value), &k, NOW), "unauthorized");
        }
    }

    #[test]
    fn two_authorization_headers_are_refused() {
        let k = keys(1);
        let value = format!("Bearer {}", k.issue(&claims("admin")));
        let mut h = headers(&value);
        h.append(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        assert_code(auth(&h, &k, NOW), "unauthorized");
    }

    #[test]
    fn garbage_token() {
        for t in [
            "Bearer x",
            "Bearer a.b.c",
            "Bearer ....",
            "Bearer eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert_code(auth(&headers(t), &keys(1), NOW), "unauthorized");
        }
    }

    #[test]
    fn expired_token_has_its_own_code() {
        let k = keys(1);
        let token = k.issue(&claims("admin"));
        let h = headers(&format!("Bearer {token}"));
        assert_code(auth(&h, &k, NOW + ACCESS_TOKEN_TTL_SECS), "token_expired");
    }

    #[test]
    fn forged_with_another_key() {
        let token = keys(2).issue(&claims("owner"));
        let h = headers(&format!("Bearer {token}"));
        assert_code(auth(&h, &keys(1), NOW), "unauthorized");
    }

    #[test]
    fn signed_but_unusable_claims_are_refused() {
        let k = keys(1);
        let mut bad_role = claims("superuser");
        let mut bad_tenant = claims("admin");
        bad_tenant.tid = "T#1".into();
        let mut bad_user = claims("admin");
        bad_user.sub = String::new();
        bad_role.sid = "s-1".into();
        for c in [bad_role, bad_tenant, bad_user] {
            let h = headers(&format!("Bearer {}", k.issue(&c)));
            assert_code(auth(&h, &k, NOW), "unauthorized");
        }
    }

    #[test]
    fn permission_denied_is_forbidden() {
        let k = keys(1);
        let h = headers(&format!("Bearer {}", k.issue(&claims("viewer"))));
        let c = auth(&h, &k, NOW).unwrap();
        assert!(c.require(Permission::LeadsRead).is_ok());
        let err = c.require(Permission::LeadsExport).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(err.code(), "forbidden");
        assert_eq!(err.public_message(), "Your role does not allow this.");
    }

    // ------------------------------------------------------------------ API keys, with a fake

    use crate::api_keys::ApiKeyStore;
    use crate::auth::api_key::{ApiKey, KeyForAuth, PresentedKey};
    use std::sync::Mutex;

    /// One stored key, counting what `authenticate` asks of the store.
    #[derive(Default)]
    struct FakeKeys {
        stored: Mutex<Option<KeyForAuth>>,
        reads: Mutex<u32>,
        touches: Mutex<Vec<i64>>,
    }

    impl ApiKeyStore for FakeKeys {
        async fn for_auth(&self, p: &PresentedKey) -> anyhow::Result<Option<KeyForAuth>> {
            *self.reads.lock().unwrap() += 1;
            Ok(self
                .stored
                .lock()
                .unwrap()
                .clone()
                .filter(|k| k.key.key_id == p.key_id && k.key.tenant_id == p.tenant_id))
        }
        async fn touch(
            &self,
            _: &TenantId,
            _: &ApiKeyId,
            now: OffsetDateTime,
        ) -> anyhow::Result<()> {
            self.touches.lock().unwrap().push(now.unix_timestamp());
            if let Some(k) = self.stored.lock().unwrap().as_mut() {
                k.key.last_used_at = Some(now);
            }
            Ok(())
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    /// A viewer key of `t-acme` created by an admin, and the key's bearer header.
    fn fake_key() -> (FakeKeys, HeaderMap) {
        let t = TenantId::parse("t-acme").unwrap();
        let u = UserId::parse("u-admin").unwrap();
        let k = ApiKeyId::parse("ak-1").unwrap();
        let (key, hash) = api_key::issue(&t, &u, &k);
        let store = FakeKeys::default();
        *store.stored.lock().unwrap() = Some(KeyForAuth {
            key: ApiKey {
                key_id: k,
                tenant_id: t,
                name: "crm sync".into(),
                role: Role::Viewer,
                created_by: u,
                created_at: at(NOW - 60),
                expires_at: at(NOW + 86_400),
                last_used_at: None,
                revoked_at: None,
            },
            secret_hash: hash,
            creator_role: Some(Role::Admin),
            tenant_closed: false,
        });
        (store, headers(&format!("Bearer {key}")))
    }

    #[test]
    fn an_api_key_authenticates_as_its_creator_with_its_own_role() {
        let (store, h) = fake_key();
        let c = block_on(authenticate(&h, &keys(1), &store, at(NOW))).unwrap();
        assert_eq!(c.user_id.as_str(), "u-admin");
        assert_eq!(c.tenant_id.as_str(), "t-acme");
        assert_eq!(c.role, Role::Viewer, "the key's role, not the creator's");
        assert_eq!(c.api_key_id().map(|k| k.as_str()), Some("ak-1"));
        assert!(c.session_id().is_none());
        assert_eq!(
            c.require_session().unwrap_err().code(),
            "api_key_not_allowed"
        );
        assert_eq!(c.require(Permission::LeadsWrite).unwrap_err().status(), 403);
        assert_eq!(*store.reads.lock().unwrap(), 1, "one read");
    }

    #[test]
    fn access_tokens_read_nothing() {
        let (store, _) = fake_key();
        let k = keys(1);
        let h = headers(&format!("Bearer {}", k.issue(&claims("admin"))));
        block_on(authenticate(&h, &k, &store, at(NOW))).unwrap();
        assert_eq!(*store.reads.lock().unwrap(), 0);
    }

    #[test]
    fn a_revoked_expired_or_tampered_key_is_unauthorized() {
        let (store, h) = fake_key();
        let value = h[header::AUTHORIZATION].to_str().unwrap().to_string();
        let mut tampered = value.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'x' { 'y' } else { 'x' });
        assert_code(
            block_on(authenticate(&headers(&tampered), &keys(1), &store, at(NOW))),
            "unauthorized",
        );
        assert_code(
            block_on(authenticate(&h, &keys(1), &store, at(NOW + 86_400))),
            "unauthorized",
        );
        store
            .stored
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .key
            .revoked_at = Some(at(NOW));
        assert_code(
            block_on(authenticate(&h, &keys(1), &store, at(NOW))),
            "unauthorized",
        );
        assert!(store.touches.lock().unwrap().is_empty(), "no use recorded");
        // A JWT verifier never accepts a key, nor a key store a JWT.
        assert_code(auth(&h, &keys(1), NOW), "unauthorized");
    }

    #[test]
    fn last_used_is_recorded_at_most_once_a_minute() {
        let (store, h) = fake_key();
        for dt in [0, 10, 59, 60, 61, 130] {
            block_on(authenticate(&h, &keys(1), &store, at(NOW + dt))).unwrap();
        }
        assert_eq!(
            *store.touches.lock().unwrap(),
            vec![NOW, NOW + 60, NOW + 130]
        );
    }
}
