/** swarmd's version, reported by both CLIs. */
export const VERSION = '0.1.0'
