//! The platform's own account data (it is the controller here): tenants, users, sessions,
//! one-time tokens and security events.

pub mod api_keys;
pub mod auth;
pub mod dynamo;
pub mod policy;

use time::OffsetDateTime;

use crate::auth::permissions::Role;
use shared_core::domain::{ApiKeyId, Email, Phone, SessionId, TenantId, TenantStatus, UserId};

#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub business_name: String,
    pub status: TenantStatus,
    pub owner_user_id: UserId,
    pub created_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    /// When retention erases a closed workspace (closure + grace period).
    pub erase_after: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default)]
pub struct Mfa {
    pub enabled: bool,
    /// Base32 TOTP secret, once confirmed.
    pub secret: Option<String>,
    /// Base32 TOTP secret set up but not yet confirmed with a code.
    pub pending_secret: Option<String>,
    /// The last TOTP time step accepted: a code is never accepted twice.
    pub last_step: Option<i64>,
    /// SHA-256 hashes of the unused recovery codes.
    pub recovery_hashes: Vec<String>,
    /// Set when too many second factors failed in a row: login needs a password reset.
    pub locked_at: Option<OffsetDateTime>,
    /// When the current count of failed second factors ends (Unix seconds), if one runs.
    pub failures_window_ends: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LoginMeta {
    pub at: OffsetDateTime,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub email: Email,
    pub name: String,
    pub phone: Option<Phone>,
    pub role: Role,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub email_verified: bool,
    pub created_at: OffsetDateTime,
    pub mfa: Mfa,
    pub last_login: Option<LoginMeta>,
    /// The privacy-policy and terms versions the user accepted last, and when (`None`: a user
    /// created before versions were recorded; they are asked to accept the current ones).
    pub policy: Option<crate::policy::PolicyAcceptance>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub tenant_id: TenantId,
    /// Hash of the refresh secret currently valid.
    pub refresh_hash: String,
    /// Hashes of refresh secrets already rotated away: presenting one is reuse.
    pub previous_hashes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    VerifyEmail,
    PasswordReset,
    Invitation,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::VerifyEmail => "verify_email",
            TokenKind::PasswordReset => "password_reset",
            TokenKind::Invitation => "invitation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify_email" => Some(TokenKind::VerifyEmail),
            "password_reset" => Some(TokenKind::PasswordReset),
            "invitation" => Some(TokenKind::Invitation),
            _ => None,
        }
    }
}

/// A single-use, expiring token sent by email. Only the hash of its secret is stored.
#[derive(Debug, Clone)]
pub struct OneTimeToken {
    pub secret_hash: String,
    pub kind: TokenKind,
    pub tenant_id: TenantId,
    pub user_id: Option<UserId>,
    /// Invitations: who is invited, with which role, by whom. The address is stored sealed
    /// (`email_sealed`, readable only with the emailed link's secret), never in clear; `email`
    /// is read only from records written before.
    pub email: Option<Email>,
    pub email_sealed: Option<String>,
    pub role: Option<Role>,
    pub invited_by: Option<UserId>,
    pub expires_at: OffsetDateTime,
}

/// A security event. Holds ids and keyed hashes, never personal data in clear.
#[derive(Debug, Clone)]
pub struct SecurityEvent {
    pub tenant_id: Option<TenantId>,
    pub event: &'static str,
    pub user_id: Option<UserId>,
    pub actor_user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    /// The API key the actor used (its public id, never the secret).
    pub api_key_id: Option<ApiKeyId>,
    /// Keyed hash of the client IP.
    pub ip_hash: Option<String>,
    /// Keyed hash of the email an event concerns when no user is known (a failed login).
    pub email_hash: Option<String>,
    /// A non-personal detail (a role name, a reason code).
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

impl SecurityEvent {
    pub fn new(event: &'static str, at: OffsetDateTime) -> Self {
        Self {
            tenant_id: None,
            event,
            user_id: None,
            actor_user_id: None,
            session_id: None,
            api_key_id: None,
            ip_hash: None,
            email_hash: None,
            detail: None,
            at,
        }
    }
}
