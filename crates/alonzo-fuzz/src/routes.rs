//! The routes file (`alonzo_api::routes`): parsing, validation and route selection.
//!
//! Properties: any text parses or is refused without panicking; a selected route belongs
//! to the stage, accepts the method (or is `ANY`/`$default`), and its path parameters are
//! exactly the template's parameters; parsing the same text twice gives the same table.

use alonzo_api::routes::RouteTable;
use alonzo_model::Account;

use crate::input::{sections, text};

struct Input {
    file: String,
    requests: Vec<(String, String)>,
}

/// The fuzz target's body. Sections: the routes file, then `METHOD path` lines to select.
pub fn run(data: &[u8]) {
    let s = sections(data, 2);
    let requests = text(s[1])
        .lines()
        .map(|l| {
            let (m, p) = l.split_once(' ').unwrap_or((l, ""));
            (m.to_owned(), p.strip_prefix('/').unwrap_or(p).to_owned())
        })
        .collect();
    let input = Input { file: text(s[0]), requests };
    let account = Account { region: "us-east-1".into(), account_id: "123456789012".into() };
    let Ok(table) = RouteTable::parse(&input.file, &account) else { return };
    let again = RouteTable::parse(&input.file, &account).expect("parsing is deterministic");
    assert_eq!(format!("{table:?}"), format!("{again:?}"));
    for stage in table.stages().values() {
        for (method, path) in input.requests.iter().take(8) {
            let path = format!("/{path}");
            let Some(found) = stage.select(method, &path) else { continue };
            assert!(
                stage.routes.iter().any(|r| std::ptr::eq(r, found.route)),
                "a route from elsewhere"
            );
            match found.route.method() {
                None | Some("ANY") => {}
                Some(m) => assert!(m.eq_ignore_ascii_case(method), "{m} selected for {method}"),
            }
            let params: Vec<String> = found
                .route
                .resource
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(|s| s.trim_end_matches('+').to_owned())
                .collect();
            let names: Vec<&String> = found.path_parameters.keys().collect();
            let mut expected: Vec<&String> = params.iter().collect();
            expected.sort();
            assert_eq!(names, expected, "{} for {path}", found.route.key);
        }
    }
}
