// Package inferencepb is the generated Go code of the Open Inference
// Protocol's gRPC service (grpc_predict_v2.proto, package inference). The
// generated files are committed so that building FlexiFlow needs no protoc.
//
// To regenerate after changing the .proto, with protoc (Debian:
// protobuf-compiler) and the two plugins on PATH:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
//	go generate ./stages/models/kserve/inferencepb/
package inferencepb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative grpc_predict_v2.proto
