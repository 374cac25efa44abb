// Package broker shows capabilities travelling the way Cap'n Proto's
// Level 1 vats send them, across three parties:
//
//   - a bank (server A) opens accounts: each Account is a capability;
//   - a broker (server B) is a client of the bank: it opens accounts
//     there and hands them to its own clients, re-exporting the bank's
//     capabilities (calls, releases and cancellation go through it);
//   - a customer (client C) of the broker holds accounts that live on the
//     bank, though it never connected to it.
//
// The broker's transfer method takes a struct holding two capabilities
// (Transfer: From and To) and returns one holding two (Receipt), so
// capabilities go inside values both ways; when the customer passes the
// broker's own references back, the broker finds its own objects (no
// round trip to itself). A customer can also put its own capability in
// the struct (Transfer.Notify), which the broker calls back.
//
// Three-party handoff (Cap'n Proto Level 3: the customer talking to the
// bank directly) is not implemented: every call on the bank's accounts
// goes through the broker.
package broker
