"""CodeCommit repositories from Python: boto3's shapes, datetimes, errors."""

import datetime

import pytest

import codekeep


def test_repositories_round_trip():
    with codekeep.Keep.memory() as keep:
        account = keep.create_account("py")["Id"]
        cc = keep.client("codecommit", account=account)
        meta = cc.create_repository(repositoryName="web", tags={"team": "red"})["repositoryMetadata"]
        assert meta["Arn"] == f"arn:aws:codecommit:us-east-1:{account}:web"
        assert isinstance(meta["creationDate"], datetime.datetime)
        assert cc.get_repository(repositoryName="web")["repositoryMetadata"]["repositoryId"] == meta["repositoryId"]
        with pytest.raises(cc.exceptions.RepositoryDoesNotExistException):
            cc.get_repository(repositoryName="nope")
        with pytest.raises(cc.exceptions.InvalidRepositoryNameException):
            cc.create_repository(repositoryName="bad.git")
        assert [r["repositoryName"] for r in cc.list_repositories()["repositories"]] == ["web"]
