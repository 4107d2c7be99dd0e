// Package api is the contract between stmfd's management API and its
// clients (stmfadm, sbdadm, itadm, scripts): request and response types,
// and stable error codes.
//
// Transport: HTTP/1.1 over the daemon's unix socket. Every call is
// "POST /v1/<Method>" with a JSON request body; success is 200 with the JSON
// response, failure a 4xx/5xx status with {"error": {"code", "message"}}.
// Codes are stable and are what clients switch on; messages are for humans.
package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is a stable, machine-readable error code.
type Code string

// Error codes. Never renumber or rename: scripts match on them.
const (
	CodeInvalidArgument Code = "INVALID_ARGUMENT" // malformed request
	CodeInternal        Code = "INTERNAL"         // the daemon failed (I/O, saving state)
	CodeNotSupported    Code = "NOT_SUPPORTED"    // the provider cannot do this (yet)
	CodeBusy            Code = "BUSY"

	// Logical units.
	CodeInvalidGUID      Code = "INVALID_GUID"
	CodeLUNotFound       Code = "LU_NOT_FOUND"
	CodeGUIDInUse        Code = "GUID_IN_USE"
	CodeFileInUse        Code = "FILE_IN_USE"
	CodeInvalidProp      Code = "INVALID_PROP"        // unknown or malformed -p property
	CodeInvalidPropLen   Code = "INVALID_PROP_LEN"    // property value too long/short
	CodePropNotModify    Code = "PROP_NOT_MODIFIABLE" // property cannot be changed by modify-lu
	CodeInvalidBlockSize Code = "INVALID_BLOCK_SIZE"
	CodeInvalidSize      Code = "INVALID_SIZE"
	CodeDataFile         Code = "DATA_FILE_ERROR"
	CodeMetaFile         Code = "META_FILE_ERROR"

	// Views.
	CodeViewConflict     Code = "VIEW_CONFLICT"
	CodeLUNInUse         Code = "LUN_IN_USE"
	CodeInvalidLUN       Code = "INVALID_LUN"
	CodeViewNotFound     Code = "VIEW_NOT_FOUND"
	CodeInvalidHostGroup Code = "INVALID_HOST_GROUP" // a view names a host group that does not exist
	CodeInvalidTgtGroup  Code = "INVALID_TARGET_GROUP"

	// Host and target groups.
	CodeGroupExists      Code = "GROUP_EXISTS"
	CodeGroupNotFound    Code = "GROUP_NOT_FOUND"
	CodeGroupInUse       Code = "GROUP_IN_USE"
	CodeInvalidGroupName Code = "INVALID_GROUP_NAME"
	CodeMemberExists     Code = "MEMBER_EXISTS"
	CodeMemberNotFound   Code = "MEMBER_NOT_FOUND"
	CodeInvalidDeviceID  Code = "INVALID_DEVICE_ID" // not an iqn./eui./wwn. name
	CodeTargetOnline     Code = "TARGET_ONLINE"     // the target must be offline for this

	// Targets, portal groups, initiators (itadm).
	CodeTargetNotFound    Code = "TARGET_NOT_FOUND"
	CodeTargetExists      Code = "TARGET_EXISTS"
	CodeInvalidName       Code = "INVALID_NAME"       // not iqn./eui.
	CodeInvalidISCSIName  Code = "INVALID_ISCSI_NAME" // iqn./eui. but malformed
	CodeTPGNotFound       Code = "TPG_NOT_FOUND"
	CodeTPGExists         Code = "TPG_EXISTS"
	CodeTPGInUse          Code = "TPG_IN_USE"
	CodeInvalidTPGName    Code = "INVALID_TPG_NAME"
	CodePortalInUse       Code = "PORTAL_IN_USE"
	CodeInvalidPortal     Code = "INVALID_PORTAL"
	CodeInitiatorNotFound Code = "INITIATOR_NOT_FOUND"
	CodeInitiatorExists   Code = "INITIATOR_EXISTS"
	CodeInvalidSecret     Code = "INVALID_SECRET" // CHAP/RADIUS secret not 12..255 characters
	CodeInvalidAuth       Code = "INVALID_AUTH"
	CodeMissingProp       Code = "MISSING_PROP" // e.g. auth radius without a RADIUS server
)

// Error is an API failure: a stable code, a human message, and the object
// it concerns (a GUID, a group or target name, a property) when there is one.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Subject string `json:"subject,omitempty"`
}

func (e *Error) Error() string {
	if e.Subject != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Subject, e.Message, e.Code)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// Errorf builds an *Error about subject.
func Errorf(code Code, subject, format string, args ...any) *Error {
	return &Error{Code: code, Subject: subject, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of an *Error in err's chain, or "" if none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsCode reports whether err carries code.
func IsCode(err error, code Code) bool { return err != nil && CodeOf(err) == code }

// HTTPStatus is the HTTP status the server answers with for code.
func HTTPStatus(code Code) int {
	switch code {
	case CodeLUNotFound, CodeViewNotFound, CodeGroupNotFound, CodeMemberNotFound,
		CodeTargetNotFound, CodeTPGNotFound, CodeInitiatorNotFound:
		return http.StatusNotFound
	case CodeGUIDInUse, CodeFileInUse, CodeViewConflict, CodeLUNInUse, CodeGroupExists,
		CodeGroupInUse, CodeMemberExists, CodeTargetOnline, CodeTargetExists, CodeTPGExists,
		CodeTPGInUse, CodePortalInUse, CodeInitiatorExists, CodeBusy:
		return http.StatusConflict
	case CodeInternal:
		return http.StatusInternalServerError
	case CodeNotSupported:
		return http.StatusNotImplemented
	case CodeCancelled:
		return 499 // client closed request (nginx's code; no standard one)
	}
	return http.StatusBadRequest
}

// ErrorBody is the JSON document of a failed call.
type ErrorBody struct {
	Error *Error `json:"error"`
}
