"""The connection contract: Airflow JSON and URI forms, validation, secrets never shown."""

from __future__ import annotations

import pytest

from dialsflow.config.connections import (
    CafSettings,
    ConnectionConfigError,
    DbsSettings,
    DialsSettings,
    OmsSettings,
    from_env,
    parse_connection,
)


def test_json_form():
    conn = parse_connection("dials_default", '{"conn_type":"http","host":"https://x.cern.ch/",'
                            '"login":"app","password":"s3cret-value","extra":{"workspace":"ecal"}}')
    s = DialsSettings.from_connection(conn)
    assert (s.base_url, s.workspace, s.auth, s.client_id) == ("https://x.cern.ch/", "ecal",
                                                              "client_credentials", "app")
    assert "s3cret-value" not in repr(conn) and "s3cret-value" not in repr(s)


def test_uri_form_with_query_extras():
    conn = parse_connection("dials_default",
                            "http://app:pa%2Fss@cmsdials-api.web.cern.ch:443/?workspace=tracker")
    assert conn.host == "https://cmsdials-api.web.cern.ch:443/"
    assert conn.password == "pa/ss"
    assert conn.extra == {"workspace": "tracker"}


def test_uri_form_with_airflow_extra_json():
    conn = parse_connection("caf_default", 'http://127.0.0.1:8765/CAF/certification?__extra__='
                            '%7B%22class%22%3A%22Collisions24%22%2C%22kind%22%3A%22dcs%22%7D')
    s = CafSettings.from_connection(conn)
    assert (s.url, s.cert_class, s.kind) == ("http://127.0.0.1:8765/CAF/certification",
                                            "Collisions24", "dcs")


def test_missing_connection_means_production_device_flow():
    assert from_env("dials_default", {}) is None
    s = DialsSettings.from_connection(None)
    assert s.base_url == "https://cmsdials-api.web.cern.ch/" and s.auth == "device"


@pytest.mark.parametrize("value,message", [
    ("{not json", "invalid JSON"),
    ('{"conn_type":"http","host":""}', "'host' is empty"),
    ('{"conn_type":"http","host":"h","extra":"[1"}', "'extra' is not valid JSON"),
    ("not a uri", "not a JSON object nor a URI"),
])
def test_malformed_connections_say_what_is_wrong(value, message):
    with pytest.raises(ConnectionConfigError, match=message):
        parse_connection("dials_default", value)


def test_typed_views_validate_their_fields():
    bad_kind = parse_connection("caf_default", '{"host":"http://h/CAF","extra":{"class":"C",'
                                '"kind":"platinum"}}')
    with pytest.raises(ConnectionConfigError, match=r"extra\.kind"):
        CafSettings.from_connection(bad_kind)
    no_secret = parse_connection("oms_default", '{"host":"http://h/agg/api","login":"app"}')
    with pytest.raises(ConnectionConfigError, match="client secret"):
        OmsSettings.from_connection(no_secret)
    dials_no_secret = parse_connection("dials_default", '{"host":"http://h/","login":"a",'
                                       '"extra":{"auth":"client_credentials"}}')
    with pytest.raises(ConnectionConfigError, match="client_credentials needs"):
        DialsSettings.from_connection(dials_no_secret)


def test_dbs_grid_proxy_and_cert_pairs():
    proxy = parse_connection("dbs_default", '{"host":"https://cmsweb.cern.ch:8443/dbs/prod/global/'
                             'DBSReader","extra":{"cert":"/tmp/x509up_u1000",'
                             '"verify":"/etc/grid-security/certificates"}}')
    s = DbsSettings.from_connection(proxy)
    assert s.cert == "/tmp/x509up_u1000" and s.verify == "/etc/grid-security/certificates"
    pair = parse_connection("dbs_default", '{"host":"https://h/","extra":{"cert":"c.pem",'
                            '"key":"k.pem","verify":"false"}}')
    assert DbsSettings.from_connection(pair).cert == ("c.pem", "k.pem")
    assert DbsSettings.from_connection(pair).verify is False
