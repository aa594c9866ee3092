// Required once by a runtime started ahead (bootstrap.mjs, warmUp) so that node compiles its
// CommonJS loader before the function arrives.
module.exports = {};
