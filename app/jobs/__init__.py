"""Background work: runs only in the scheduler process, never in web workers."""
