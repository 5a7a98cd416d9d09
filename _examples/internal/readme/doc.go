// Package readme holds no code: its test compiles every Go block of the
// repository's README.md (with go vet, in a throw-away package of the root
// module or, for the Temporal section, of the Temporal example's module,
// with the names a block takes from the text around it declared), so a
// block that no longer matches the API fails make test instead of
// misleading a reader.
package readme
