// Declares the module that scripts/build-wasm.mjs generates into dist/src/backend/wasm/wasm-bytes.js.
/** relaxed-SIMD build (f32x4.relaxed_madd), base64 */
export declare const relaxedBase64: string;
/** plain-SIMD build, base64 */
export declare const simdBase64: string;
