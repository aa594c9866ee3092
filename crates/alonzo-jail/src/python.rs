//! The Python extension module a launcher's interpreter loads, `_alonzo_launcher`: this crate
//! built as a shared library (the `alonzo` binary carries it and a launcher hands it to its
//! interpreter as a memfd), whose `serve()` the runtime calls where a runtime started ahead
//! waits for its function. The interpreter is the runtime's own executable, run with exactly
//! the arguments and environment a runtime process is executed with, so a copy runs the same
//! interpreter at the same speed, with the same `sys.argv`, `sys.executable` and `sys.path`.
//!
//! Only the stable C API is used (`PyModule_Create2`, `PyLong_FromLong` and the `PyOS_*Fork*`
//! hooks), found in the interpreter with `dlsym` when the module is imported rather than
//! compiled against headers or linked: the binary builds without Python installed, and the
//! same code linked into the binary never refers to a Python symbol.

use std::ffi::{c_char, c_int, c_long, c_void};
use std::ptr::{addr_of_mut, null_mut};
use std::sync::OnceLock;

use crate::error::JailError;

type PyObject = c_void;

struct Api {
    before_fork: unsafe extern "C" fn(),
    after_fork_parent: unsafe extern "C" fn(),
    after_fork_child: unsafe extern "C" fn(),
    long_from_long: unsafe extern "C" fn(c_long) -> *mut PyObject,
    module_create2: unsafe extern "C" fn(*mut ModuleDef, c_int) -> *mut PyObject,
}

static API: OnceLock<Api> = OnceLock::new();

#[repr(C)]
struct ObjectHead {
    refcnt: isize,
    ob_type: *mut c_void,
}

#[repr(C)]
struct ModuleDefBase {
    ob_base: ObjectHead,
    m_init: Option<unsafe extern "C" fn() -> *mut PyObject>,
    m_index: isize,
    m_copy: *mut PyObject,
}

#[repr(C)]
struct MethodDef {
    name: *const c_char,
    meth: Option<unsafe extern "C" fn(*mut PyObject, *mut PyObject) -> *mut PyObject>,
    flags: c_int,
    doc: *const c_char,
}

#[repr(C)]
struct ModuleDef {
    base: ModuleDefBase,
    name: *const c_char,
    doc: *const c_char,
    size: isize,
    methods: *mut MethodDef,
    slots: *mut c_void,
    traverse: *mut c_void,
    clear: *mut c_void,
    free: *mut c_void,
}

const METH_NOARGS: c_int = 0x0004;
const PYTHON_API_VERSION: c_int = 1013;

static mut METHODS: [MethodDef; 2] = [
    MethodDef {
        name: c"serve".as_ptr(),
        meth: Some(serve),
        flags: METH_NOARGS,
        doc: c"Serve the platform's launcher requests; returns only in a sandbox's runtime."
            .as_ptr(),
    },
    MethodDef { name: std::ptr::null(), meth: None, flags: 0, doc: std::ptr::null() },
];

static mut MODULE: ModuleDef = ModuleDef {
    base: ModuleDefBase {
        ob_base: ObjectHead { refcnt: 1, ob_type: null_mut() },
        m_init: None,
        m_index: 0,
        m_copy: null_mut(),
    },
    name: c"_alonzo_launcher".as_ptr(),
    doc: std::ptr::null(),
    size: -1,
    // Python only reads the definition and the method table.
    methods: addr_of_mut!(METHODS) as *mut MethodDef,
    slots: null_mut(),
    traverse: null_mut(),
    clear: null_mut(),
    free: null_mut(),
};

/// The module's initialisation, called by the interpreter when it imports the extension
/// (`_imp.create_dynamic`, from the runtime's `_await_assignment`, in a launcher only).
///
/// # Safety
///
/// Only the interpreter calls it, with its lock held, in a process whose executable exports
/// the C API.
#[no_mangle]
pub unsafe extern "C" fn PyInit__alonzo_launcher() -> *mut PyObject {
    let Ok(api) = load_api() else {
        return null_mut();
    };
    let api = API.get_or_init(|| api);
    // SAFETY: called by the interpreter (with its lock held) when the module is imported;
    // MODULE lives for the whole process and is only read by Python.
    unsafe { (api.module_create2)(addr_of_mut!(MODULE), PYTHON_API_VERSION) }
}

/// The C API functions this module calls, from the interpreter already running.
fn load_api() -> Result<Api, JailError> {
    let symbol = |name: &std::ffi::CStr| {
        // SAFETY: RTLD_DEFAULT searches the process's global scope; the name is
        // NUL-terminated.
        let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if ptr.is_null() {
            let name = name.to_string_lossy();
            Err(JailError::Protocol(format!("python launcher: the interpreter has no {name}")))
        } else {
            Ok(ptr)
        }
    };
    // SAFETY: each symbol is the C API function of that name, whose signature is part of
    // CPython's stable ABI.
    unsafe {
        Ok(Api {
            before_fork: std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(symbol(
                c"PyOS_BeforeFork",
            )?),
            after_fork_parent: std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(symbol(
                c"PyOS_AfterFork_Parent",
            )?),
            after_fork_child: std::mem::transmute::<*mut c_void, unsafe extern "C" fn()>(symbol(
                c"PyOS_AfterFork_Child",
            )?),
            long_from_long: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(c_long) -> *mut PyObject,
            >(symbol(c"PyLong_FromLong")?),
            module_create2: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut ModuleDef, c_int) -> *mut PyObject,
            >(symbol(c"PyModule_Create2")?),
        })
    }
}

/// `_alonzo_launcher.serve()`: the launcher's request loop. It returns only in a sandbox's
/// program process, after the interpreter's after-fork hooks have run there.
unsafe extern "C" fn serve(_module: *mut PyObject, _args: *mut PyObject) -> *mut PyObject {
    crate::launcher::serve();
    let api = API.get().expect("loaded");
    // SAFETY: this thread holds the interpreter lock (serve was called from Python and never
    // released it) and this process was forked (twice) since the interpreter last ran here.
    unsafe {
        (api.after_fork_child)();
        (api.long_from_long)(0)
    }
}

/// Around each fork of the launcher: the interpreter's before-fork and parent hooks
/// (`os.register_at_fork`, the import lock). The child's hook runs only in R, the one copy
/// that goes on running Python.
pub(crate) fn before_fork() {
    if let Some(api) = API.get() {
        // SAFETY: called on the interpreter's only thread, which holds its lock.
        unsafe { (api.before_fork)() }
    }
}

/// See [`before_fork`].
pub(crate) fn after_fork_parent() {
    if let Some(api) = API.get() {
        // SAFETY: as in before_fork, after it.
        unsafe { (api.after_fork_parent)() }
    }
}
