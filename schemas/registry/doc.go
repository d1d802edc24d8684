// Package registry is FlexiFlow's client of a Confluent-compatible Schema
// Registry (Confluent's own, Apicurio's ccompat API, Redpanda's, Karapace),
// built on franz-go's pkg/sr.
//
// Schema ids enter (from the magic byte and id that frame a Confluent
// record) and writer schemas leave, fetched once per id and cached; a
// subject and a schema enter and the registered id leaves. Its errors say
// which of two things went wrong, because they are handled apart: a schema
// the registry does not have (ErrUnknown: the event is at fault and goes
// to a dead-letter topic), and a registry that cannot answer now (any
// other error: the caller pauses and tries again, losing nothing).
package registry
