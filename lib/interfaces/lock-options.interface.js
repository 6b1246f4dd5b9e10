export {};
//# sourceMappingURL=lock-options.interface.js.map