//! The console's page frame (head, navigation, logout form) and the login page, plus small
//! formatting helpers shared by the pages. Markup is maud's: every `( … )` is escaped.

use maud::{html, Markup, DOCTYPE};

use crate::console::session::Session;
use crate::console::PREFIX;

/// The sections of the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Functions,
    Concurrency,
    Logs,
    Usage,
    Queues,
}

const SECTIONS: [(Section, &str, &str); 5] = [
    (Section::Functions, "Functions", "/"),
    (Section::Concurrency, "Concurrency", "/concurrency"),
    (Section::Logs, "Logs", "/logs"),
    (Section::Usage, "Usage & cost", "/usage"),
    (Section::Queues, "Queues", "/queues"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Alonzo console" }
            // No favicon request (it would reach the signed API and be refused).
            link rel="icon" href="data:,";
            link rel="stylesheet" href={ (PREFIX) "/static/console.css" };
            script src={ (PREFIX) "/static/console.js" } defer {}
        }
    }
}

/// A page of the logged-in console.
pub(crate) fn page(title: &str, active: Section, session: &Session, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-csrf=(session.csrf) data-prefix=(PREFIX) {
                header.topbar {
                    a.brand href={ (PREFIX) "/" } { span.logo { "λ" } " Alonzo" }
                    nav {
                        @for (section, label, path) in SECTIONS {
                            a href={ (PREFIX) (path) } class=[(section == active).then_some("active")] { (label) }
                        }
                    }
                    form.logout method="post" action={ (PREFIX) "/logout" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        span.who title="Logged in with this access key" { (session.access_key_id) }
                        button type="submit" id="logout" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A page outside a session (errors before login).
pub(crate) fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { main.narrow { h1 { (title) } (content) } }
        }
    }
}

/// The login form.
pub(crate) fn login(nonce: &str, next: &str, failed: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body.bare {
                main.login {
                    div.card {
                        h1 { span.logo { "λ" } " Alonzo console" }
                        p.muted { "Log in with the server's access key (the credentials its API clients use)." }
                        @if failed {
                            p.error id="login-error" role="alert" { "Wrong access key id or secret access key." }
                        }
                        form method="post" action={ (PREFIX) "/login" } {
                            input type="hidden" name="nonce" value=(nonce);
                            input type="hidden" name="next" value=(next);
                            label { "Access key id"
                                input type="text" name="access_key_id" id="access_key_id" autocomplete="username" required autofocus; }
                            label { "Secret access key"
                                input type="password" name="secret_access_key" id="secret_access_key" autocomplete="current-password" required; }
                            button.primary type="submit" id="login" { "Log in" }
                        }
                    }
                }
            }
        }
    }
}

/// Epoch ms as `YYYY-MM-DD HH:MM:SS` UTC.
pub(crate) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Money with enough digits for fractions of a cent.
pub(crate) fn money(amount: f64, currency: &str) -> String {
    if amount == 0.0 {
        format!("0.00 {currency}")
    } else if amount.abs() < 0.01 {
        format!("{amount:.6} {currency}")
    } else {
        format!("{amount:.2} {currency}")
    }
}
