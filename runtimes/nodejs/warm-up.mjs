// Imported once by a runtime started ahead (bootstrap.mjs, warmUp) so that node compiles its
// ES module loader before the function arrives.
export {};
