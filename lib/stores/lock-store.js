export {};
//# sourceMappingURL=lock-store.js.map