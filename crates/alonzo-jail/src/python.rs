//! The Python interpreter a launcher holds: the interpreter's own shared library, loaded with
//! `dlopen`, started by `Py_BytesMain` with exactly the arguments a runtime process is
//! executed with (so configuration, `sys.argv`, `sys.executable`, `sys.flags` and `sys.path`
//! are what that process would have), plus one built-in module, `_alonzo_launcher`, whose
//! `serve()` the runtime calls where a runtime started ahead waits for its function.
//!
//! Only the stable C API is used (`Py_BytesMain`, `PyImport_AppendInittab`,
//! `PyModule_Create2`, `PyLong_FromLong` and the `PyOS_*Fork*` hooks), declared here rather
//! than compiled against headers, so that the binary builds without Python installed.

use std::ffi::{c_char, c_int, c_long, c_void, CString};
use std::path::Path;
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

unsafe extern "C" fn init_module() -> *mut PyObject {
    let api = API.get().expect("the Python API is loaded before the interpreter starts");
    // SAFETY: called by the interpreter (with its lock held) when the module is imported;
    // MODULE lives for the whole process and is only read by Python.
    unsafe { (api.module_create2)(addr_of_mut!(MODULE), PYTHON_API_VERSION) }
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

/// Loads `libpython` and runs `Py_BytesMain(argv)`; returns its exit status (in the launcher
/// only if the interpreter never reached `serve`, in a sandbox when its runtime ends).
pub(crate) fn run_main(libpython: &Path, argv: &[String]) -> Result<i32, JailError> {
    let fail = |what: String| JailError::Protocol(format!("python launcher: {what}"));
    let path = CString::new(libpython.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("the library path contains NUL".into()))?;
    // SAFETY: dlopen runs the library's initialisers; libpython's only set up its own
    // state. RTLD_GLOBAL makes its symbols visible to the extension modules it loads later,
    // which expect them from the executable.
    let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(fail(format!("cannot load {}", libpython.display())));
    }
    let symbol = |name: &std::ffi::CStr| {
        // SAFETY: the handle is valid and the name NUL-terminated.
        let ptr = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if ptr.is_null() {
            Err(fail(format!("{} has no {}", libpython.display(), name.to_string_lossy())))
        } else {
            Ok(ptr)
        }
    };
    // SAFETY: each symbol is the C API function of that name, whose signature is part of
    // CPython's stable ABI.
    let api = unsafe {
        Api {
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
        }
    };
    // SAFETY: as above, stable-ABI signatures.
    let (append_inittab, bytes_main) = unsafe {
        (
            std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(
                    *const c_char,
                    Option<unsafe extern "C" fn() -> *mut PyObject>,
                ) -> c_int,
            >(symbol(c"PyImport_AppendInittab")?),
            std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(c_int, *mut *mut c_char) -> c_int,
            >(symbol(c"Py_BytesMain")?),
        )
    };
    let _ = API.set(api);
    // SAFETY: called before the interpreter is initialised, as the API requires; the name is
    // a literal.
    if unsafe { append_inittab(c"_alonzo_launcher".as_ptr(), Some(init_module)) } != 0 {
        return Err(fail("cannot register the launcher module".into()));
    }
    let args = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fail("an argument contains NUL".into()))?;
    // Py_BytesMain keeps pointers into argv for sys.orig_argv: the strings must outlive it,
    // and so they do (they are never freed: the process ends in this call or its copies).
    let mut pointers: Vec<*mut c_char> =
        args.into_iter().map(CString::into_raw).chain(std::iter::once(null_mut())).collect();
    let argc = c_int::try_from(argv.len()).map_err(|_| fail("too many arguments".into()))?;
    let pointers_ptr = pointers.as_mut_ptr();
    std::mem::forget(pointers);
    // SAFETY: argv is a NULL-terminated array of argc NUL-terminated strings that stay
    // allocated for the rest of the process.
    Ok(unsafe { bytes_main(argc, pointers_ptr) })
}
