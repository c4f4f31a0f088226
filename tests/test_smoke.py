from tests.factories import login, make_user


def test_admin_signs_in_and_sees_home(client, db, kit):
    admin = make_user(db, kit, roles=("admin",))
    login(client, db, admin)
    page = client.get("/")
    assert page.status_code == 200
    assert admin.user.person.full_name in page.get_data(as_text=True)
    assert client.get("/admin/users/").status_code == 200
    assert client.get("/audit/").status_code == 200
