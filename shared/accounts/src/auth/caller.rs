//! Who is calling: the one way an authenticated route learns its user, tenant and role. It
//! reads only the verified access token, so the tenant can never come from the request body or
//! path, and it does no I/O, so a missing, forged or expired token costs no database call.

use lambda_http::http::{header, HeaderMap};

use super::jwt::{TokenError, VerifyingKeys};
use super::permissions::{allows, Permission, Role};
use shared_core::domain::{SessionId, TenantId, UserId};
use shared_core::error::AppError;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub role: Role,
    pub session_id: SessionId,
    /// The user's credential epoch the token was issued under (writes compare it with the
    /// user's current one: `AccountStore::require_live_for_write`).
    pub cred_epoch: i64,
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

/// Authenticates the request from its access token alone.
pub fn authenticate(
    headers: &HeaderMap,
    keys: &VerifyingKeys,
    now_unix: i64,
) -> Result<Caller, AppError> {
    let token = bearer_token(headers).ok_or_else(unauthorized)?;
    let claims = keys.verify(token, now_unix).map_err(|e| match e {
        TokenError::Expired => expired(),
        _ => unauthorized(),
    })?;
    Ok(Caller {
        user_id: UserId::parse(&claims.sub).map_err(|_| unauthorized())?,
        tenant_id: TenantId::parse(&claims.tid).map_err(|_| unauthorized())?,
        role: Role::parse(&claims.role).ok_or_else(unauthorized)?,
        session_id: SessionId::parse(&claims.sid).map_err(|_| unauthorized())?,
        cred_epoch: claims.cep,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwt::{AccessClaims, TokenSigner, ACCESS_TOKEN_TTL_SECS, ISSUER};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use lambda_http::http::HeaderValue;

    const NOW: i64 = 1_780_000_000;

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
            let c = authenticate(&headers(&format!("{scheme} {token}")), &k, NOW + 5).unwrap();
            assert_eq!(c.user_id.as_str(), "u-1");
            assert_eq!(c.tenant_id.as_str(), "t-acme");
            assert_eq!(c.role, Role::Member);
            assert_eq!(c.session_id.as_str(), "s-1");
            assert_eq!(c.cred_epoch, 4);
        }
    }

    #[test]
    fn missing_header() {
        assert_code(
            authenticate(&HeaderMap::new(), &keys(1), NOW),
            "unauthorized",
        );
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
            assert_code(authenticate(&headers(&value), &k, NOW), "unauthorized");
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
        assert_code(authenticate(&h, &k, NOW), "unauthorized");
    }

    #[test]
    fn garbage_token() {
        for t in [
            "Bearer x",
            "Bearer a.b.c",
            "Bearer ....",
            "Bearer eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert_code(authenticate(&headers(t), &keys(1), NOW), "unauthorized");
        }
    }

    #[test]
    fn expired_token_has_its_own_code() {
        let k = keys(1);
        let token = k.issue(&claims("admin"));
        let h = headers(&format!("Bearer {token}"));
        assert_code(
            authenticate(&h, &k, NOW + ACCESS_TOKEN_TTL_SECS),
            "token_expired",
        );
    }

    #[test]
    fn forged_with_another_key() {
        let token = keys(2).issue(&claims("owner"));
        let h = headers(&format!("Bearer {token}"));
        assert_code(authenticate(&h, &keys(1), NOW), "unauthorized");
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
            assert_code(authenticate(&h, &k, NOW), "unauthorized");
        }
    }

    #[test]
    fn permission_denied_is_forbidden() {
        let k = keys(1);
        let h = headers(&format!("Bearer {}", k.issue(&claims("viewer"))));
        let c = authenticate(&h, &k, NOW).unwrap();
        assert!(c.require(Permission::LeadsRead).is_ok());
        let err = c.require(Permission::LeadsExport).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(err.code(), "forbidden");
        assert_eq!(err.public_message(), "Your role does not allow this.");
    }
}
