"""Which environment variables a snapshot warning calls secret-looking, by name."""

import pytest

from coldsnap._runtime.snapshot_warnings import SECRET_NAME


@pytest.mark.parametrize("name", ["HF_TOKEN", "MY_API_TOKEN", "API_KEY", "AWS_SECRET_ACCESS_KEY",
                                  "DB_PASSWORD", "APIKEY", "GOOGLE_APPLICATION_CREDENTIALS",
                                  "token", "GITHUB_TOKENS"])
def test_secret_looking_names(name: str) -> None:
    assert SECRET_NAME.search(name)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "MONKEY_PATCH", "KEYBOARD",
                                  "HOME", "PATH", "SECRETARY_NAME"])
def test_names_that_only_contain_a_word_are_not(name: str) -> None:
    assert not SECRET_NAME.search(name)
