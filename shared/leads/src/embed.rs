//! The snippet a tenant pastes into its website: a plain HTML form that posts to lead intake and
//! works without JavaScript (intake answers a form post with a redirect to the form's
//! `redirect_url`), and a small inline script that, when it runs, sends the same fields as JSON
//! with `fetch` and shows the API's per-field messages beside the fields instead of leaving the
//! page.
//!
//! Everything from the form's record is escaped for where it lands (HTML text, attribute, or a
//! JavaScript string inside `<script>`), so a consent text or a field name cannot inject markup.

use std::fmt::Write as _;

use super::forms::FormDefinition;
use shared_core::domain::FieldKind;

/// The URL the form posts to.
pub fn submit_url(api_base_url: &str, form: &FormDefinition) -> String {
    format!(
        "{}/v1/forms/{}/submissions",
        api_base_url.trim_end_matches('/'),
        form.form_id
    )
}

/// The snippet for `form`, posting to the API at `api_base_url`.
pub fn embed_html(form: &FormDefinition, api_base_url: &str) -> String {
    let id = format!("lf-{}", form.form_id);
    let mut h = String::with_capacity(4096);
    let _ = writeln!(
        h,
        r#"<form id="{id}" class="lf-form" action="{action}" method="post" accept-charset="utf-8">"#,
        action = attr(&submit_url(api_base_url, form)),
    );
    for f in &form.fields {
        let d = &f.def;
        let input_id = format!("{id}-{}", d.name);
        let required = if d.required { " required" } else { "" };
        let _ = writeln!(h, r#"  <p class="lf-field">"#);
        let _ = writeln!(
            h,
            r#"    <label for="{input_id}">{label}{star}</label>"#,
            label = text(&label(&d.name)),
            star = if d.required { " *" } else { "" },
        );
        let autocomplete = match d.name.as_str() {
            "email" => " autocomplete=\"email\"",
            "phone" => " autocomplete=\"tel\"",
            "name" => " autocomplete=\"name\"",
            "company" => " autocomplete=\"organization\"",
            _ => "",
        };
        let described = format!(r#" aria-describedby="{input_id}-error""#);
        match d.kind {
            FieldKind::LongText => {
                let _ = writeln!(
                    h,
                    r#"    <textarea id="{input_id}" name="{name}" maxlength="{max}" rows="5"{described}{required}></textarea>"#,
                    name = attr(&d.name),
                    max = d.max_len(),
                );
            }
            kind => {
                let input_type = match kind {
                    FieldKind::Email => "email",
                    FieldKind::Phone => "tel",
                    _ => "text",
                };
                let _ = writeln!(
                    h,
                    r#"    <input id="{input_id}" name="{name}" type="{input_type}" maxlength="{max}"{autocomplete}{described}{required}>"#,
                    name = attr(&d.name),
                    max = d.max_len(),
                );
            }
        }
        let _ = writeln!(
            h,
            r#"    <span class="lf-error" id="{input_id}-error" hidden></span>"#
        );
        let _ = writeln!(h, "  </p>");
    }
    for c in &form.consents {
        let name = format!("consent_{}", c.key);
        let _ = writeln!(h, r#"  <p class="lf-consent">"#);
        let _ = writeln!(
            h,
            r#"    <label><input type="checkbox" name="{n}" value="true" aria-describedby="{id}-{n}-error"{req}> {t}</label>"#,
            n = attr(&name),
            req = if c.required { " required" } else { "" },
            t = text(&c.text),
        );
        let _ = writeln!(
            h,
            r#"    <span class="lf-error" id="{id}-{n}-error" hidden></span>"#,
            n = attr(&name)
        );
        let _ = writeln!(h, "  </p>");
    }
    // The honeypot: invisible to people and to screen readers, filled by bots.
    let _ = writeln!(
        h,
        r#"  <div aria-hidden="true" style="position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden"><input type="text" name="{hp}" tabindex="-1" autocomplete="off" value=""></div>"#,
        hp = attr(&form.honeypot_field),
    );
    let _ = writeln!(h, r#"  <button type="submit">Send</button>"#);
    let _ = writeln!(
        h,
        r#"  <p class="lf-status" role="status" aria-live="polite"></p>"#
    );
    h.push_str("</form>\n");
    h.push_str(&script(&id, &form.redirect_url));
    h
}

fn script(form_element_id: &str, redirect_url: &str) -> String {
    format!(
        r#"<script>
(function () {{
  "use strict";
  var form = document.getElementById({id});
  if (!form || !window.fetch || !window.JSON) return;
  var status = form.querySelector(".lf-status");
  var button = form.querySelector("button[type=submit]");
  // One key per filled-in form: a double click or a retry stores one submission.
  var key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : String(Date.now()) + "-" + Math.random().toString(16).slice(2);
  form.addEventListener("submit", function (event) {{
    event.preventDefault();
    var body = {{}}, i, el, slots = form.querySelectorAll(".lf-error");
    for (i = 0; i < slots.length; i++) {{ slots[i].hidden = true; slots[i].textContent = ""; }}
    for (i = 0; i < form.elements.length; i++) {{
      el = form.elements[i];
      if (!el.name) continue;
      el.removeAttribute("aria-invalid");
      body[el.name] = el.type === "checkbox" ? el.checked : el.value;
    }}
    body._page_url = location.href;
    button.disabled = true;
    status.textContent = "Sending…";
    fetch(form.action, {{
      method: "POST",
      headers: {{ "Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": key }},
      body: JSON.stringify(body)
    }}).then(function (response) {{
      return response.json().catch(function () {{ return {{}}; }}).then(function (data) {{
        return {{ ok: response.ok, data: data || {{}} }};
      }});
    }}).then(function (r) {{
      if (r.ok) {{ window.location.assign({redirect}); return; }}
      var error = r.data.error || {{}}, fields = error.fields || {{}};
      Object.keys(fields).forEach(function (name) {{
        var slot = document.getElementById({id} + "-" + name + "-error");
        var input = form.elements[name];
        if (slot) {{ slot.textContent = String(fields[name]); slot.hidden = false; }}
        if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
      }});
      status.textContent = error.message || "The form could not be sent.";
    }}).catch(function () {{
      status.textContent = "The form could not be sent; please try again.";
    }}).then(function () {{ button.disabled = false; }});
  }});
}})();
</script>
"#,
        id = js_string(form_element_id),
        redirect = js_string(redirect_url),
    )
}

/// `email` → `Email`, `long_answer` → `Long answer`.
fn label(name: &str) -> String {
    let spaced = name.replace('_', " ");
    let mut c = spaced.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn attr(s: &str) -> String {
    text(s)
}

/// A JavaScript string literal safe inside a `<script>` element.
fn js_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::{FormDefinition, FormInput};
    use shared_core::domain::{ConsentDef, FormId, TenantId};
    use time::macros::datetime;

    fn form() -> FormDefinition {
        let input: FormInput = serde_json::from_value(serde_json::json!({
            "name": "Contact",
            "allowed_origins": ["https://www.example.com"],
            "redirect_url": "https://www.example.com/thanks",
        }))
        .unwrap();
        let mut f = FormDefinition::create(
            input,
            TenantId::parse("t").unwrap(),
            FormId::parse("fm-1").unwrap(),
            datetime!(2026-11-29 12:00 UTC),
        )
        .unwrap();
        f.consents.push(ConsentDef {
            key: "marketing".into(),
            version: "v1".into(),
            text: "News <b>weekly</b> & \"offers\"".into(),
            required: false,
        });
        f
    }

    #[test]
    fn plain_form_posts_every_field_consent_and_the_honeypot() {
        let html = embed_html(&form(), "https://api.example.com/");
        assert!(html.contains(
            r#"action="https://api.example.com/v1/forms/fm-1/submissions" method="post""#
        ));
        assert!(html.contains(r#"name="email" type="email" maxlength="254" autocomplete="email""#));
        assert!(html.contains("required>"));
        assert!(html.contains(r#"<textarea id="lf-fm-1-message" name="message""#));
        assert!(html.contains(r#"name="consent_marketing" value="true""#));
        assert!(html.contains(r#"name="_gotcha" tabindex="-1""#));
        assert!(html.contains("News &lt;b&gt;weekly&lt;/b&gt; &amp; &quot;offers&quot;"));
        assert!(html.contains("<script>") && html.contains("fetch(form.action"));
    }

    #[test]
    fn nothing_escapes_into_the_script() {
        assert_eq!(
            js_string("a</script>&\"b"),
            r#""a\u003c/script\u003e\u0026\"b""#
        );
        let html = embed_html(&form(), "https://api.example.com");
        let script = &html[html.find("<script>").unwrap() + 8..];
        assert_eq!(script.matches("</script>").count(), 1, "{script}");
        assert!(script.contains(r#"window.location.assign("https://www.example.com/thanks")"#));
    }
}
