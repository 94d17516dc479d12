// The Deno runtime floor for the start-up comparison: a program that does nothing.
