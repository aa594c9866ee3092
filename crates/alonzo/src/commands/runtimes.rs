//! `alonzo runtimes`: the runtime table this host supports (what `CreateFunction` accepts).

use alonzo_control::{RuntimeCatalog, RuntimeKind};

/// Prints the detected runtimes.
pub(crate) fn run() -> anyhow::Result<()> {
    let catalog = RuntimeCatalog::detect();
    println!("{:<18}  STARTED WITH", "RUNTIME");
    for (id, kind) in catalog.iter() {
        let how = match kind {
            RuntimeKind::Python(path) => {
                format!("Alonzo's Python bootstrap under {}", path.display())
            }
            RuntimeKind::Node(path) => {
                format!("Alonzo's Node.js bootstrap under {}", path.display())
            }
            RuntimeKind::Provided => {
                "the function's own bootstrap (/var/task/bootstrap, then /opt/bootstrap)".to_owned()
            }
        };
        println!("{id:<18}  {how}");
    }
    Ok(())
}
